//! Drift statistics with the exact definitions of SciPy (`ks_2samp` in `auto` mode, `chisquare`,
//! `wasserstein_distance`, `jensenshannon`) and Evidently's binning, plus PSI over reference
//! quantile bins. Golden tests compare against SciPy to 1e-9.

use std::f64::consts::{LN_2, PI};

/// Two-sample Kolmogorov-Smirnov result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ks {
    /// The statistic D (largest ECDF gap).
    pub statistic: f64,
    /// Two-sided p-value.
    pub pvalue: f64,
    /// Whether the p-value is exact (both samples at most 10,000) or asymptotic.
    pub exact: bool,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Rounds half to even, as numpy's `round`.
fn round_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// Two-sided two-sample KS test as `scipy.stats.ks_2samp(a, b)` (method `auto`: exact when both
/// samples have at most 10,000 values, else asymptotic). Both slices must be sorted ascending and
/// non-empty; NaN must have been removed.
pub fn ks_2samp_sorted(a: &[f64], b: &[f64]) -> Ks {
    let (n1, n2) = (a.len(), b.len());
    let (f1, f2) = (n1 as f64, n2 as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let (mut max_s, mut min_s) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    // Evaluate cdf1 - cdf2 at every value of the union (right-continuous ECDFs).
    while i < n1 || j < n2 {
        let v = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.min(*y),
            (Some(x), None) => *x,
            (None, Some(y)) => *y,
            (None, None) => break,
        };
        while i < n1 && a[i] <= v {
            i += 1;
        }
        while j < n2 && b[j] <= v {
            j += 1;
        }
        let d = i as f64 / f1 - j as f64 / f2;
        max_s = max_s.max(d);
        min_s = min_s.max(-d);
    }
    let min_s = min_s.clamp(0.0, 1.0);
    let mut d = if min_s > max_s { min_s } else { max_s };
    let g = gcd(n1 as u64, n2 as u64);
    if n1.max(n2) <= 10_000 {
        let lcm = (n1 as u64 / g) as f64 * f2;
        let h = round_even(d * lcm);
        d = h / lcm;
        if h == 0.0 {
            return Ks {
                statistic: d,
                pvalue: 1.0,
                exact: true,
            };
        }
        let h = h as u64;
        let p = if n1 == n2 {
            prob_outside_square(n1 as u64, h)
        } else {
            outer_prob_inside(n1 as u64, n2 as u64, g, h)
        };
        if p.is_finite() && (0.0..=1.0).contains(&p) {
            return Ks {
                statistic: d,
                pvalue: p,
                exact: true,
            };
        }
    }
    let (m, n) = if f1 >= f2 { (f1, f2) } else { (f2, f1) };
    let en = m * n / (m + n);
    let p = kolmogn_sf(round_even(en), d).clamp(0.0, 1.0);
    Ks {
        statistic: d,
        pvalue: p,
        exact: false,
    }
}

/// P(D_{n,n} >= h/n), the Horner-like alternating sum (Hodges).
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    let (n, h) = (n as f64, h as f64);
    while k >= 0 {
        let kf = k as f64;
        let mut p1 = 1.0;
        let mut j = 0.0;
        while j < h {
            p1 = (n - kf * h - j) * p1 / (n + kf * h + j + 1.0);
            j += 1.0;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// The proportion of lattice paths from (0,0) to (m,n) leaving |x/m - y/n| < h/lcm (Hodges'
/// inside method, computing 1 - p directly as Viehmann 2021).
fn outer_prob_inside(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = (m / g, n / g);
    let (m, n, mg, ng, h) = (m as i64, n as i64, mg as i64, ng as i64, h as i64);
    let ceil_div = |a: i64, b: i64| (a as f64 / b as f64).ceil() as i64;
    let floor_div = |a: i64, b: i64| (a as f64 / b as f64).floor() as i64;
    let mut minj = 0i64;
    let mut maxj = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    for x in a.iter_mut().take(maxj as usize).skip(minj as usize) {
        *x = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = (floor_div(ng * i - h, mg) + 1).max(0).min(n);
        maxj = ceil_div(ng * i + h, mg).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let fi = i as f64;
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            let idx = (jj + minj - lastminj) as usize;
            val = (a[idx] * fi + val * j as f64) / (fi + j as f64);
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = (maxj - minj) as usize;
            let end = (start + (lastlen - curlen) as usize).min(a.len());
            for x in &mut a[start..end] {
                *x = 1.0;
            }
        }
    }
    a[(maxj - minj - 1) as usize]
}

const E128: i32 = 128;
fn ep128() -> f64 {
    2f64.powi(E128)
}
fn em128() -> f64 {
    2f64.powi(-E128)
}

fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    // Stirling series coefficients, as printed in SciPy's _ksstats.py.
    #[allow(clippy::excessive_precision, reason = "the coefficients as published")]
    const C: [f64; 8] = [
        -2.955_065_359_477_124_2e-2,
        6.410_256_410_256_41e-3,
        -1.917_526_917_526_917_6e-3,
        8.417_508_417_508_417e-4,
        -5.952_380_952_380_953e-4,
        7.936_507_936_507_937e-4,
        -2.777_777_777_777_778e-3,
        8.333_333_333_333_333e-2,
    ];
    let rn = 1.0 / n;
    let x = rn / n;
    let poly = C.iter().fold(0.0, |acc, c| acc * x + c);
    n.ln() / 2.0 - n + (2.0 * PI).ln() / 2.0 + rn * poly
}

/// Survival function of the two-sided one-sample Kolmogorov statistic D_n at `x`
/// (`scipy.stats.kstwo.sf(x, n)`, Simard & L'Ecuyer's choice of algorithms).
pub fn kolmogn_sf(n: f64, x: f64) -> f64 {
    if n.is_nan() || n < 1.0 || n.fract() != 0.0 || x.is_nan() {
        return f64::NAN;
    }
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let t = n * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if n <= 140.0 {
            let mut p = 1.0;
            let mut i = 1.0;
            while i <= n {
                p *= i * (1.0 / n) * (2.0 * t - 1.0);
                i += 1.0;
            }
            p
        } else {
            (log_nfactorial_div_n_pow_n(n) + n * (2.0 * t - 1.0).ln()).exp()
        };
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    if t >= n - 1.0 {
        return (2.0 * (1.0 - x).powf(n)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov_sf(n as u64, x)).clamp(0.0, 1.0);
    }
    let nxsq = t * x;
    if n <= 140.0 {
        if nxsq <= 0.754693 {
            return (1.0 - kolmogn_dmtw(n as u64, x)).clamp(0.0, 1.0);
        }
        if nxsq <= 4.0 {
            return (1.0 - kolmogn_pomeranz(n as u64, x)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov_sf(n as u64, x)).clamp(0.0, 1.0);
    }
    if nxsq >= 370.0 {
        return 0.0;
    }
    if nxsq >= 2.2 {
        return (2.0 * smirnov_sf(n as u64, x)).clamp(0.0, 1.0);
    }
    let cdf = if nxsq >= 18.0 {
        1.0
    } else if n <= 100_000.0 && n * x.powf(1.5) <= 1.4 {
        kolmogn_dmtw(n as u64, x)
    } else {
        kolmogn_pelz_good(n, x)
    };
    (1.0 - cdf).clamp(0.0, 1.0)
}

fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..m {
                c[i * m + j] += aik * b[k * m + j];
            }
        }
    }
    c
}

/// Pr(D_n <= d) by the Durbin matrix algorithm (Marsaglia, Tsang, Wang 2003).
fn kolmogn_dmtw(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut hm = vec![0.0; m * m];
    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powi(j as i32)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let mut hpwr = vec![0.0; m * m];
    for i in 0..m {
        hpwr[i * m + i] = 1.0;
    }
    let mut nn = n;
    let mut expnt: i64 = 0;
    let mut hexpnt: i64 = 0;
    while nn > 0 {
        if nn % 2 == 1 {
            hpwr = matmul(&hpwr, &hm, m);
            expnt += hexpnt;
        }
        hm = matmul(&hm, &hm, m);
        hexpnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > ep128() {
            for x in &mut hm {
                *x /= ep128();
            }
            hexpnt += i64::from(E128);
        }
        nn /= 2;
    }
    let mut p = hpwr[(k - 1) * m + (k - 1)];
    let nf = n as f64;
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < em128() {
            p *= ep128();
            expnt -= i64::from(E128);
        }
    }
    if expnt != 0 {
        p *= 2f64.powi(expnt as i32);
    }
    p.clamp(0.0, 1.0)
}

fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (ip1div2, ip1mod2) = ((i + 1) / 2, (i + 1) % 2);
        if ip1mod2 == 0 {
            if ip1div2 == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1)
            }
        } else {
            (ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// Pr(D_n <= x) by Pomeranz's recursion (1974).
fn kolmogn_pomeranz(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let n = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![1.0; npwrs];
    let mut twogpower = vec![1.0; npwrs];
    let mut onem2gpower = vec![1.0; npwrs];
    let (g_n, two_g_n, one_m2g_n) = (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        gpower[m] = gpower[m - 1] * g_n / m as f64;
        twogpower[m] = twogpower[m - 1] * two_g_n / m as f64;
        onem2gpower[m] = onem2gpower[m - 1] * one_m2g_n / m as f64;
    }
    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let mut expnt: i64 = 0;
    let (mut j1, _) = pomeranz_j1j2(0, n, ll, ceilf, roundf);
    let mut j2;
    for i in 1..(2 * n + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.fill(0.0);
        (j1, j2) = pomeranz_j1j2(i, n, ll, ceilf, roundf);
        let pwrs = if i == 1 || i == 2 * n + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let ln2 = ln2 as usize;
            let start = (k1 - v0s) as usize;
            let src = &v0[start..(start + ln2).min(v0.len())];
            let pw = &pwrs[..ln2.min(pwrs.len())];
            // Full convolution of src and pw.
            let mut conv = vec![0.0; src.len() + pw.len() - 1];
            for (a, &sa) in src.iter().enumerate() {
                for (b, &pb) in pw.iter().enumerate() {
                    conv[a + b] += sa * pb;
                }
            }
            let conv_start = (j1 - k1) as usize;
            let conv_len = (j2 - j1 + 1) as usize;
            v1[..conv_len].copy_from_slice(&conv[conv_start..conv_start + conv_len]);
            let mx = v1.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < mx && mx < em128() {
                for x in &mut v1 {
                    *x *= ep128();
                }
                expnt -= i64::from(E128);
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = v1[(n - v1s) as usize];
    for m in 1..=n {
        if ans.abs() > ep128() {
            ans *= em128();
            expnt += i64::from(E128);
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans *= 2f64.powi(expnt as i32);
    }
    ans.clamp(0.0, 1.0)
}

/// The Pelz-Good approximation of Pr(D_n <= x).
fn kolmogn_pelz_good(n: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let z = n.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let qlog = -PI * PI / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let pi2 = PI * PI;
    let pi4 = pi2 * pi2;
    let pi6 = pi4 * pi2;
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut kk = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for k in (1..=maxk).rev() {
        let m = (2 * k - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf((8 * k) as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for i in 0..4 {
            kk[i] = kk[i] * qpower + coeffs[i];
        }
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let div = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for i in 0..4 {
        kk[i] = kk[i] * q * sqrt2pi / div[i];
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for k in (1..=maxk).rev() {
        let kf = k as f64;
        let ksq = kf * kf;
        let qp = q2.powf(ksq);
        k2extra += ksq * qp;
        let kspi = PI * kf;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp;
    }
    kk[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    kk[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    let mut sum = 0.0;
    for (i, k) in kk.iter().enumerate() {
        sum += k / n.powf(i as f64 / 2.0);
    }
    sum
}

/// One-sided Smirnov survival function Pr(D+_n > x) (`scipy.special.smirnov`), by the
/// Birnbaum-Tingey sum of positive terms in log space.
pub fn smirnov_sf(n: u64, x: f64) -> f64 {
    if x.is_nan() || !(0.0..=1.0).contains(&x) || n == 0 {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let nx = nf * x;
    let nxfl = nx.floor();
    if nxfl == 0.0 {
        let cdf = x * (1.0 + x).powf(nf - 1.0);
        return 1.0 - cdf;
    }
    if -2.0 * nf * x * x < -708.396_418_532_264_1 {
        return 0.0;
    }
    if nxfl >= nf - 1.0 {
        return (1.0 - x).powf(nf);
    }
    if n > 1_000_000 {
        let logp = -(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf;
        return if logp < -LN_2 {
            logp.exp()
        } else {
            1.0 + logp.exp_m1()
        };
    }
    // sf = x * sum_{v=0}^{floor(n(1-x))} C(n,v) (1-x-v/n)^(n-v) (x+v/n)^(v-1)
    let vmax = (nf * (1.0 - x)).floor() as u64;
    let mut ln_c = 0.0f64;
    let mut sum = 0.0f64;
    let mut prev = 0.0f64;
    let mut max_term = 0.0f64;
    for v in 0..=vmax {
        let vf = v as f64;
        if v > 0 {
            ln_c += ((nf - vf + 1.0) / vf).ln();
        }
        let base2 = 1.0 - x - vf / nf;
        if base2 <= 0.0 && v < n {
            break;
        }
        let l2 = if v == n { 0.0 } else { (nf - vf) * base2.ln() };
        let l1 = (vf - 1.0) * (x + vf / nf).ln();
        let term = (ln_c + l1 + l2).exp();
        sum += term;
        max_term = max_term.max(term);
        if term < prev && term < max_term * 1e-20 {
            break;
        }
        prev = term;
    }
    (x * sum).clamp(0.0, 1.0)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularised upper incomplete gamma Q(a, x).
fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    let gln = ln_gamma(a);
    if x < a + 1.0 {
        // Series for P.
        let mut ap = a;
        let mut sum = 1.0 / a;
        let mut del = sum;
        for _ in 0..10_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        let p = sum * (-x + a * x.ln() - gln).exp();
        (1.0 - p).clamp(0.0, 1.0)
    } else {
        // Continued fraction for Q (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-16 {
                break;
            }
        }
        ((-x + a * x.ln() - gln).exp() * h).clamp(0.0, 1.0)
    }
}

/// Survival function of the chi-square distribution with `dof` degrees of freedom.
pub fn chi2_sf(stat: f64, dof: f64) -> f64 {
    if stat.is_nan() {
        return f64::NAN;
    }
    gamma_q(dof / 2.0, stat / 2.0)
}

/// Chi-square goodness of fit as `scipy.stats.chisquare(f_obs, f_exp)`: (statistic, p-value).
pub fn chisquare(f_obs: &[f64], f_exp: &[f64]) -> (f64, f64) {
    let stat: f64 = f_obs
        .iter()
        .zip(f_exp)
        .map(|(o, e)| {
            let d = o - e;
            d * d / e
        })
        .sum();
    let dof = f_obs.len().saturating_sub(1) as f64;
    if dof < 1.0 {
        return (stat, f64::NAN);
    }
    (stat, chi2_sf(stat, dof))
}

/// First Wasserstein distance between two samples (`scipy.stats.wasserstein_distance`). Both
/// slices sorted ascending, non-empty.
pub fn wasserstein_sorted(u: &[f64], v: &[f64]) -> f64 {
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    loop {
        let next = match (u.get(i), v.get(j)) {
            (Some(a), Some(b)) => a.min(*b),
            (Some(a), None) => *a,
            (None, Some(b)) => *b,
            (None, None) => break,
        };
        if let Some(p) = prev {
            // ECDFs evaluated at p (counts of values <= p), times the gap to the next value.
            total += (i as f64 / nu - j as f64 / nv).abs() * (next - p);
        }
        while i < u.len() && u[i] <= next {
            i += 1;
        }
        while j < v.len() && v[j] <= next {
            j += 1;
        }
        prev = Some(next);
    }
    total
}

/// Jensen-Shannon distance (natural log) of two non-negative weight vectors, normalised to sum 1
/// (`scipy.spatial.distance.jensenshannon`).
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let sp: f64 = p.iter().sum();
    let sq: f64 = q.iter().sum();
    let rel = |x: f64, y: f64| {
        if x > 0.0 && y > 0.0 {
            x * (x / y).ln()
        } else if x == 0.0 && y >= 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    };
    let (mut left, mut right) = (0.0, 0.0);
    for (a, b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left += rel(a, m);
        right += rel(b, m);
    }
    ((left + right) / 2.0).sqrt()
}

/// Population standard deviation (ddof = 0), as `numpy.std`.
pub fn std_pop(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
}

/// Equal-width bin edges over [lo, hi] as `numpy.histogram_bin_edges(…, bins)`.
pub fn histogram_edges(lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let (lo, hi) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let step = (hi - lo) / bins as f64;
    let mut e: Vec<f64> = (0..=bins).map(|i| i as f64 * step + lo).collect();
    e[bins] = hi;
    e
}

/// The bin of `x` among equal-width `edges` as `numpy.histogram` (last bin closed), or `None`
/// outside.
pub fn histogram_bin(edges: &[f64], x: f64) -> Option<usize> {
    let n = edges.len() - 1;
    let (first, last) = (edges[0], edges[n]);
    if !(x >= first && x <= last) {
        return None;
    }
    let norm = n as f64 / (last - first);
    let mut idx = ((x - first) * norm) as usize;
    if idx >= n {
        idx = n - 1;
    }
    if x < edges[idx] {
        idx = idx.saturating_sub(1);
    } else if x >= edges[idx + 1] && idx != n - 1 {
        idx += 1;
    }
    Some(idx)
}

/// Exact quantile `q` of sorted values with linear interpolation (numpy's default).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let pos = q * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Population stability index of two distributions given as bin counts; empty bins count as
/// 0.0001 (as Evidently).
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    let rs: u64 = reference.iter().sum();
    let cs: u64 = current.iter().sum();
    let mut total = 0.0;
    for (r, c) in reference.iter().zip(current) {
        let mut pr = *r as f64 / rs as f64;
        let mut pc = *c as f64 / cs as f64;
        if pr == 0.0 {
            pr = 0.0001;
        }
        if pc == 0.0 {
            pc = 0.0001;
        }
        total += (pc - pr) * (pc / pr).ln();
    }
    total
}

/// The bin edges of PSI: `bins` quantile bins of the sorted reference (duplicates removed).
pub fn quantile_edges(sorted_reference: &[f64], bins: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = (1..bins)
        .map(|i| quantile_sorted(sorted_reference, i as f64 / bins as f64))
        .collect();
    edges.dedup();
    edges
}

/// The PSI bin of `x` given interior edges: bin `i` holds `(edge[i-1], edge[i]]`.
pub fn quantile_bin(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|e| *e < x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_identical_samples_have_p_one() {
        let a: Vec<f64> = (0..50).map(f64::from).collect();
        let r = ks_2samp_sorted(&a, &a);
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.pvalue, 1.0);
        assert!(r.exact);
    }

    #[test]
    fn gamma_q_matches_known_values() {
        // chi2.sf(3.84145882069412, 1) = 0.05
        assert!((chi2_sf(3.841_458_820_694_124, 1.0) - 0.05).abs() < 1e-12);
        // chi2.sf(10, 4) = exp(-5)*(1+5) = 0.04042768199451279
        assert!((chi2_sf(10.0, 4.0) - 0.040_427_681_994_512_8).abs() < 1e-12);
    }

    #[test]
    fn histogram_bins_put_the_maximum_in_the_last_bin() {
        let e = histogram_edges(0.0, 3.0, 3);
        assert_eq!(histogram_bin(&e, 3.0), Some(2));
        assert_eq!(histogram_bin(&e, 0.0), Some(0));
        assert_eq!(histogram_bin(&e, 1.0), Some(1));
        assert_eq!(histogram_bin(&e, -0.1), None);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
        assert_eq!(quantile_sorted(&v, 0.25), 1.75);
    }
}
