//! Drift statistics against SciPy golden values (testdata/dataq/scipy_golden.json, made by the
//! committed scipy_golden.py), to 1e-9.

use mlops_dataq::stats;
use serde_json::Value;

use crate::testdata;

fn sample(s: &Value) -> Vec<f64> {
    let g = |k: &str| s[k].as_u64().unwrap();
    let (n, mult, add, m, step) = (g("n"), g("mult"), g("add"), g("mod"), g("step"));
    let (scale, shift) = (s["scale"].as_f64().unwrap(), s["shift"].as_f64().unwrap());
    let mut v: Vec<f64> = (0..n)
        .map(|i| {
            let r = (i * mult + add) % m;
            let r = (r / step) * step;
            r as f64 * scale / m as f64 + shift
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(name: &str, what: &str, got: f64, want: f64) {
    let tol = 1e-9 * want.abs().max(1.0);
    assert!(
        (got - want).abs() <= tol,
        "{name}: {what} = {got:e}, scipy {want:e} (diff {:e})",
        (got - want).abs()
    );
}

#[test]
fn drift_statistics_match_scipy() {
    let text = std::fs::read_to_string(testdata().join("scipy_golden.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        match c["kind"].as_str().unwrap() {
            "ks" => {
                let r = stats::ks_2samp_sorted(&sample(&c["a"]), &sample(&c["b"]));
                close(
                    name,
                    "statistic",
                    r.statistic,
                    c["statistic"].as_f64().unwrap(),
                );
                close(name, "pvalue", r.pvalue, c["pvalue"].as_f64().unwrap());
            }
            "wasserstein" => {
                let got = stats::wasserstein_sorted(&sample(&c["a"]), &sample(&c["b"]));
                close(name, "distance", got, c["value"].as_f64().unwrap());
            }
            "kstwo_sf" => {
                let got = stats::kolmogn_sf(c["n"].as_f64().unwrap(), c["x"].as_f64().unwrap());
                close(name, "sf", got, c["value"].as_f64().unwrap());
            }
            "chisquare" => {
                let (s, p) = stats::chisquare(&nums(&c["f_obs"]), &nums(&c["f_exp"]));
                close(name, "statistic", s, c["statistic"].as_f64().unwrap());
                close(name, "pvalue", p, c["pvalue"].as_f64().unwrap());
            }
            "jensenshannon" => {
                let got = stats::jensen_shannon(&nums(&c["p"]), &nums(&c["q"]));
                close(name, "distance", got, c["value"].as_f64().unwrap());
            }
            other => panic!("unknown golden kind {other}"),
        }
    }
}
