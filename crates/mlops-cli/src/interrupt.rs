//! Ctrl-C and SIGTERM handling shared by the commands that run stages (`repro`, `k8s run`).

use mlops_pipeline::CancelToken;

/// Cancels `token` on Ctrl-C (SIGINT) or SIGTERM, after printing `message` to stderr. The
/// listener thread lives until the process ends.
pub(crate) fn cancel_on_interrupt(token: CancelToken, message: &'static str) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let terminated = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = terminated => {}
            }
        });
        eprintln!("{message}");
        token.cancel();
    });
}
