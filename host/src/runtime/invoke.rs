//! One wRPC invocation of an exported function: read the parameters, call the function in
//! a fresh instance, write the results.

use tokio::io::{AsyncRead, AsyncWrite};
use trellis_lattice::rpc::RemoteErrorKind;
use wasmtime::component::InstancePre;

use super::describe::ServedFunction;
use super::failure::{classify, classify_call, Failure};
use super::instance::Instance;
use super::state::StoreState;

/// Reads the parameters from `rx`, calls `function` in `instance` and writes the results to
/// `tx`. Returns the outcome and what the guest printed.
pub async fn call_export<I, O>(
    instance: Instance,
    pre: &InstancePre<StoreState>,
    function: &ServedFunction,
    rx: I,
    tx: O,
) -> (Result<(), Failure>, String)
where
    I: AsyncRead + wrpc_transport::Index<I> + Send + Sync + Unpin + 'static,
    O: AsyncWrite + wrpc_transport::Index<O> + Send + Sync + Unpin + 'static,
{
    // A child of the invocation's own span (none when it is not recorded).
    let instantiating = instance.instantiating();
    instance
        .run(|mut store| async move {
            let guest = pre.instantiate_async(&mut store).await;
            drop(instantiating);
            let guest = guest.map_err(|e| classify(&e, "failed to instantiate"))?;
            let func = guest
                .get_func(&mut store, function.index)
                .ok_or_else(|| Failure {
                    kind: RemoteErrorKind::Internal,
                    message: format!(
                        "export `{}` disappeared",
                        function.export.signature.qualified_name()
                    ),
                })?;
            let params: Vec<_> = function.export.ty.params().map(|(_, t)| t).collect();
            let results: Vec<_> = function.export.ty.results().collect();
            wrpc_runtime_wasmtime::call(
                &mut store,
                rx,
                tx,
                &[],
                &Default::default(),
                &[],
                params.iter(),
                &results,
                func,
            )
            .await
            .map_err(|e| classify_call(&e))
        })
        .await
}
