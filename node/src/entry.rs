//! What an entry node does for a device: find (or open) the project's task, get an input slot
//! with the members' sealed triple shares, and pass the device's sealed masked input to every
//! member. The entry node relays envelopes it cannot open.

use alloy::primitives::U256;
use futures::future::{join_all, try_join_all};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use crate::committee::{task_of_project, verified_peer};
use crate::envelope::Sealed;
use crate::messages::{RefusalKind, Request, Response, SlotTicket, TaskId, TaskInfo};
use crate::node::{ANSWER_WAIT, Inner, NodeError, now_ms};
use conclave_p2p::network::NetworkError;

/// How soon an entry node asks a member still preprocessing for a slot's shares again; the
/// pause doubles up to [`MAX_SHARES_RETRY`].
const SHARES_RETRY: std::time::Duration = std::time::Duration::from_millis(200);
const MAX_SHARES_RETRY: std::time::Duration = std::time::Duration::from_secs(2);
/// How often an entry node asks a member for a slot's shares again after the request failed in
/// the network (a member that is really gone fails the task anyway).
const NETWORK_RETRIES: u32 = 3;

/// A slot and, per member in committee order, its triple shares sealed for the device.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlotGrant {
    pub slot: u32,
    pub shares: Vec<Sealed>,
}

impl Inner {
    /// The project's open task, joining one another node opened or opening one.
    pub(crate) async fn current_task(&self, project: u64) -> Result<TaskInfo, NodeError> {
        let _guard = self.opening.lock().await;
        let known = self.volatile().open.get(&project).copied();
        if let Some((task, coordinator, closes_at)) = known
            && closes_at > now_ms() + 1000
        {
            match self.task_info(task, coordinator).await {
                Ok(info) if info.project_id == project => return Ok(info),
                Ok(_) => tracing::debug!("a gossiped task of another project; opening one"),
                Err(e) => tracing::debug!(error = %e, "known task unusable; opening another"),
            }
            // Not asked again: a stranger's gossip would otherwise cost every device request a
            // wait on its made-up coordinator.
            self.volatile()
                .open
                .retain(|p, (t, _, _)| *p != project || *t != task);
        }
        self.open_task(project).await
    }

    /// A task's committee and window, from the cache or its coordinator. A coordinator's answer
    /// is kept only if the task is on chain for the project it names and `coordinator` is the
    /// node of its opener: any peer can gossip a task, and a stranger's would otherwise be handed
    /// to devices (members and chain-checking devices refuse it anyway).
    pub(crate) async fn task_info(
        &self,
        task: TaskId,
        coordinator: PeerId,
    ) -> Result<TaskInfo, NodeError> {
        if let Some(info) = self.volatile().infos.get(&task) {
            return Ok(info.clone());
        }
        let info = match self
            .ask(coordinator, Request::GetTask { task_id: task })
            .await?
        {
            Response::Task(info)
                if info.task_id == task && info.coordinator == coordinator.to_bytes() =>
            {
                *info
            }
            other => return Err(NodeError::Task(format!("unexpected answer {other:?}"))),
        };
        let on_chain = task_of_project(&self.contracts, U256::from_be_bytes(task), info.project_id)
            .await
            .map_err(|e| NodeError::Task(format!("announced task: {e}")))?;
        if verified_peer(&self.contracts, on_chain.opener).await? != Some(coordinator) {
            return Err(NodeError::Task(
                "the announced coordinator is not the node of the task's opener".into(),
            ));
        }
        self.volatile().cache_info(&info);
        Ok(info)
    }

    /// A task's info: cached, stored, or asked of its coordinator (from gossip or the device's
    /// hint; a wrong hint only fails the device's own request).
    async fn known_info(&self, task: &TaskId, hint: Option<PeerId>) -> Result<TaskInfo, NodeError> {
        if let Some(info) = self.volatile().infos.get(task) {
            return Ok(info.clone());
        }
        if let Some(info) = self.store.task(task)?.and_then(|r| r.info) {
            return Ok(info);
        }
        let gossiped = self
            .volatile()
            .open
            .values()
            .find(|(t, _, _)| t == task)
            .map(|(_, c, _)| *c);
        match gossiped.or(hint) {
            Some(coordinator) => self
                .task_info(*task, coordinator)
                .await
                .map_err(|_| NodeError::UnknownTask),
            None => Err(NodeError::UnknownTask),
        }
    }

    /// A task's state as its coordinator reports it.
    pub(crate) async fn remote_status(
        &self,
        task: TaskId,
    ) -> Result<crate::task::TaskReport, NodeError> {
        let coordinator = match self.known_info(&task, None).await {
            Ok(info) => PeerId::from_bytes(&info.coordinator)
                .map_err(|_| NodeError::Task("bad coordinator peer id".into()))?,
            // A task this node never heard of (or forgot once it ended): its coordinator is
            // the node of the operator that opened it on chain.
            Err(NodeError::UnknownTask) => self.opener_node(task).await?,
            Err(e) => return Err(e),
        };
        let asked = self.ask(coordinator, Request::Status { task_id: task });
        match tokio::time::timeout(crate::node::ANSWER_WAIT, asked)
            .await
            .map_err(|_| NodeError::Task("the task's coordinator did not answer".into()))??
        {
            Response::Status(report) => Ok(*report),
            other => Err(NodeError::Task(format!("unexpected answer {other:?}"))),
        }
    }

    /// The node of the operator that opened `task` on chain (its coordinator).
    async fn opener_node(&self, task: TaskId) -> Result<PeerId, NodeError> {
        let opener = self
            .contracts
            .task_if_any(alloy::primitives::U256::from_be_bytes(task))
            .await?
            .ok_or(NodeError::UnknownTask)?
            .opener;
        crate::committee::verified_peer(&self.contracts, opener)
            .await?
            .ok_or(NodeError::UnknownTask)
    }

    fn peers(info: &TaskInfo) -> Result<Vec<PeerId>, NodeError> {
        info.peers().map_err(|e| NodeError::Task(e.to_string()))
    }

    /// Has the coordinator grant a slot to `client_key` (or, with the project owner's signature,
    /// takes the owner slot: members check the signature) and collects every member's sealed
    /// triple shares for it.
    pub(crate) async fn grant_slot(
        &self,
        task: TaskId,
        client_key: [u8; 32],
        owner_signature: Option<Vec<u8>>,
        hint: Option<PeerId>,
    ) -> Result<SlotGrant, NodeError> {
        let info = self.known_info(&task, hint).await?;
        let ticket = match owner_signature {
            Some(signature) => SlotTicket {
                task_id: task,
                slot: info.owner_slot().ok_or_else(|| {
                    NodeError::Unavailable("the task's program reads no owner parameters".into())
                })?,
                client_key,
                signature,
            },
            None => {
                let coordinator = PeerId::from_bytes(&info.coordinator)
                    .map_err(|_| NodeError::Task("bad coordinator peer id".into()))?;
                let allocate = Request::AllocateSlot {
                    task_id: task,
                    client_key,
                };
                match self.ask(coordinator, allocate).await? {
                    Response::Slot(t) if t.task_id == task && t.client_key == client_key => t,
                    other => return Err(NodeError::Task(format!("unexpected answer {other:?}"))),
                }
            }
        };
        let slot = ticket.slot;
        let asks = Self::peers(&info)?.into_iter().map(|peer| {
            let r = Request::TripleShares(ticket.clone());
            async move {
                // Preprocessing may still be running at the member, which then answers busy at
                // once: ask again until it is done.
                let deadline = tokio::time::Instant::now() + ANSWER_WAIT * 12;
                let mut pause = SHARES_RETRY;
                let mut network_retries = 0;
                loop {
                    // What to report if the deadline ends the asking.
                    let gave_up = match tokio::time::timeout(ANSWER_WAIT, self.ask(peer, r.clone()))
                        .await
                    {
                        Ok(Ok(Response::Shares(s))) => return Ok(s),
                        // A connection closed under the request (trimmed by either side between
                        // two asks) or a dial that failed once: asked again on a new one, a few
                        // times. Giving up burns the slot, and with it the device's input: the
                        // ticket's key asking again gets the same shares, nothing more.
                        Ok(Err(e @ NodeError::Network(NetworkError::Request { .. })))
                            if network_retries < NETWORK_RETRIES =>
                        {
                            network_retries += 1;
                            e
                        }
                        Ok(Err(NodeError::Refused {
                            kind: RefusalKind::Busy,
                            ..
                        })) => {
                            NodeError::Task(format!("{peer} did not finish preprocessing in time"))
                        }
                        Ok(Ok(other)) => {
                            return Err(NodeError::Task(format!("unexpected answer {other:?}")));
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(_) => {
                            return Err(NodeError::Task(format!("{peer} did not send its shares")));
                        }
                    };
                    if tokio::time::Instant::now() + pause > deadline {
                        return Err(gave_up);
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_SHARES_RETRY);
                }
            }
        });
        // One member failing fails the grant: the others are not kept asking.
        let shares = try_join_all(asks).await?;
        Ok(SlotGrant { slot, shares })
    }

    /// The task's committee and every member's sealed shares of its private outputs, in
    /// committee order.
    pub(crate) async fn sealed_outputs(
        &self,
        task: TaskId,
    ) -> Result<(TaskInfo, Vec<Sealed>), NodeError> {
        let info = match self.known_info(&task, None).await {
            Ok(info) => info,
            // A task over, never gossiped here: its opener's node coordinated it.
            Err(NodeError::UnknownTask) => {
                let on_chain = self.contracts.task(U256::from_be_bytes(task)).await?;
                let coordinator = verified_peer(&self.contracts, on_chain.opener)
                    .await?
                    .ok_or(NodeError::UnknownTask)?;
                self.task_info(task, coordinator).await?
            }
            Err(e) => return Err(e),
        };
        let asks = Self::peers(&info)?.into_iter().map(|peer| async move {
            let r = Request::SealedOutput { task_id: task };
            match tokio::time::timeout(ANSWER_WAIT, self.ask(peer, r)).await {
                Ok(Ok(Response::Shares(s))) => Ok(s),
                Ok(Ok(other)) => Err(NodeError::Task(format!("unexpected answer {other:?}"))),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(NodeError::Task(format!("{peer} did not answer"))),
            }
        });
        let shares = join_all(asks).await.into_iter().collect::<Result<_, _>>()?;
        Ok((info, shares))
    }

    /// Passes each member its sealed masked input; succeeds once every member stored it.
    pub(crate) async fn deliver_input(
        &self,
        task: TaskId,
        slot: u32,
        sealed: Vec<Sealed>,
        hint: Option<PeerId>,
    ) -> Result<(), NodeError> {
        let info = self.known_info(&task, hint).await?;
        let peers = Self::peers(&info)?;
        if sealed.len() != peers.len() {
            return Err(NodeError::Task(format!(
                "{} sealed inputs for {} members",
                sealed.len(),
                peers.len()
            )));
        }
        let sends = peers
            .into_iter()
            .zip(sealed)
            .map(|(peer, sealed)| async move {
                let r = Request::Input {
                    task_id: task,
                    slot,
                    sealed,
                };
                match tokio::time::timeout(ANSWER_WAIT, self.ask(peer, r)).await {
                    Ok(Ok(Response::Accepted)) => Ok(()),
                    Ok(Ok(other)) => Err(NodeError::Task(format!("unexpected answer {other:?}"))),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(NodeError::Task(format!("{peer} did not acknowledge"))),
                }
            });
        join_all(sends).await.into_iter().collect()
    }
}
