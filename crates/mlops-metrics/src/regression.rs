//! Regression metrics with scikit-learn's definitions (single output, no sample weights).

use crate::error::{Error, Result};

fn check(y_true: &[f64], y_pred: &[f64]) -> Result<()> {
    if y_true.len() != y_pred.len() {
        return Err(Error::invalid(format!(
            "y_true has {} rows but y_pred has {}",
            y_true.len(),
            y_pred.len()
        )));
    }
    if y_true.is_empty() {
        return Err(Error::invalid("no rows"));
    }
    Ok(())
}

fn mean_of(y_true: &[f64], y_pred: &[f64], f: impl Fn(f64, f64) -> f64) -> Result<f64> {
    check(y_true, y_pred)?;
    Ok(y_true
        .iter()
        .zip(y_pred)
        .map(|(&t, &p)| f(t, p))
        .sum::<f64>()
        / y_true.len() as f64)
}

/// Mean absolute error.
///
/// Fails when the lengths differ or there are no rows (also for every function below).
pub fn mae(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    mean_of(y_true, y_pred, |t, p| (t - p).abs())
}

/// Mean squared error.
pub fn mse(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    mean_of(y_true, y_pred, |t, p| (t - p) * (t - p))
}

/// Root mean squared error.
pub fn rmse(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    Ok(mse(y_true, y_pred)?.sqrt())
}

/// Coefficient of determination with scikit-learn's `force_finite=True`: a perfect prediction
/// of a constant target is 1, an imperfect one 0; NaN with fewer than two rows.
pub fn r2(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    check(y_true, y_pred)?;
    if y_true.len() < 2 {
        return Ok(f64::NAN);
    }
    let mean = y_true.iter().sum::<f64>() / y_true.len() as f64;
    let num: f64 = y_true
        .iter()
        .zip(y_pred)
        .map(|(&t, &p)| (t - p) * (t - p))
        .sum();
    let den: f64 = y_true.iter().map(|&t| (t - mean) * (t - mean)).sum();
    Ok(match (num == 0.0, den == 0.0) {
        (true, _) => 1.0,
        (false, true) => 0.0,
        (false, false) => 1.0 - num / den,
    })
}

/// Mean absolute percentage error as a fraction (not times 100), with the denominator guarded by
/// machine epsilon like scikit-learn.
pub fn mape(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    mean_of(y_true, y_pred, |t, p| {
        (p - t).abs() / t.abs().max(f64::EPSILON)
    })
}

/// Median absolute error (the mean of the two middle values for an even count, as numpy).
pub fn median_ae(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    check(y_true, y_pred)?;
    let mut errors: Vec<f64> = y_true
        .iter()
        .zip(y_pred)
        .map(|(&t, &p)| (t - p).abs())
        .collect();
    errors.sort_unstable_by(f64::total_cmp);
    let n = errors.len();
    Ok(if n % 2 == 1 {
        errors[n / 2]
    } else {
        (errors[n / 2 - 1] + errors[n / 2]) / 2.0
    })
}

/// The largest absolute error.
pub fn max_error(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    check(y_true, y_pred)?;
    Ok(y_true
        .iter()
        .zip(y_pred)
        .map(|(&t, &p)| (t - p).abs())
        .fold(0.0, f64::max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_is_forced_finite_for_constant_targets() {
        assert_eq!(r2(&[1.0, 1.0], &[1.0, 1.0]).unwrap(), 1.0);
        assert_eq!(r2(&[1.0, 1.0], &[1.0, 2.0]).unwrap(), 0.0);
        assert!(r2(&[1.0], &[2.0]).unwrap().is_nan());
    }

    #[test]
    fn median_of_even_count_is_mean_of_middle_pair() {
        assert_eq!(median_ae(&[0.0; 4], &[1.0, 2.0, 3.0, 4.0]).unwrap(), 2.5);
    }

    #[test]
    fn mismatched_lengths_and_empty_inputs_fail() {
        assert!(
            mae(&[1.0], &[1.0, 2.0])
                .unwrap_err()
                .to_string()
                .contains("1 rows")
        );
        assert!(max_error(&[], &[]).is_err());
    }
}
