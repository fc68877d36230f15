//! mlops-cas.
