//! One module per area of the command line. Each defines its clap arguments and a `run` function
//! that calls the library crate and renders the result.

pub(crate) mod data;
