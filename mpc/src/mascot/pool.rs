//! The background producer: keeps a pool of checked triples, random values, input masks and
//! random bits filled, batch by batch, so the online phase does not wait when the pool is sized
//! for its workload.
//!
//! Every party of a committee runs one pool over its own preprocessing transport. Batches are
//! produced in the same order at every party; a party produces the next batch when any of its
//! levels is below target. Parties that consume the same material (the same sessions, in the same
//! order) therefore run the same batches, a faster party simply waiting for the slower one's
//! frames. Only material from batches whose every check passed enters the pool; after a failure
//! the producer stops, what is in stock can still be taken (a failed MAC check poisons the key,
//! so no session would start on it), and a shortfall reports the reason.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::MascotKeys;
use super::batch::{Batch, BatchSpec, input_len};
use super::setup::Setup;
use crate::bits::{bits_from_squares, squares_circuit};
use crate::driver::{Keeping, run};
use crate::prep::{InputMask, Material, PrepError, Preprocessing, Requirements, Triple};
use crate::session::{Abort, Session, SessionConfig};
use crate::share::{MacKeyShare, PartyId, Share};
use crate::transport::Transport;
use crate::wire::SessionId;

/// What to keep in stock and how much one batch makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Produced per batch.
    pub batch: BatchSpec,
    /// Random bits made from each batch, from triples and random values of that batch (so every
    /// party splits every batch the same way). At most the batch's triples and randoms.
    pub bits_per_batch: usize,
    /// Levels below which the producer runs another batch.
    pub target: Levels,
    /// A workload known in advance: the random VOLEs per ordered pair its batches consume, made
    /// once by the setup when fewer than [`super::silent::BASE`] ([`Setup::for_values`]); `None` for a setup
    /// that extends.
    pub setup_values: Option<usize>,
}

/// How much of each kind the pool holds (or should hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Levels {
    pub triples: usize,
    pub randoms: usize,
    /// Input masks by owner.
    pub masks: Vec<usize>,
    pub bits: usize,
}

impl PoolConfig {
    /// Batches that add `per_batch` triples and a tenth as many randoms, masks per party and bits;
    /// the pool aims to hold `target_triples` triples and one batch's worth of the rest.
    pub fn for_triples(parties: usize, per_batch: usize, target_triples: usize) -> Self {
        let small = (per_batch / 10).max(1);
        PoolConfig {
            batch: BatchSpec {
                triples: per_batch + small,
                randoms: 2 * small,
                masks: vec![small; parties],
            },
            bits_per_batch: small,
            target: Levels {
                triples: target_triples,
                randoms: small,
                masks: vec![small; parties],
                bits: small,
            },
            setup_values: None,
        }
    }
}

impl PoolConfig {
    /// Batches that together make at least `triples` triples and `bits` random bits (each bit
    /// takes one triple and one random value of its batch), about 1024 triples per batch; no
    /// random values or input masks are kept. A workload whose batches authenticate fewer than
    /// [`super::silent::BASE`] values per party gets a setup of just those (a task's few hundred triples: about
    /// a tenth of the data an extending setup moves).
    pub fn for_material(parties: usize, triples: usize, bits: usize) -> Self {
        let batches = (triples + bits).div_ceil(1024).max(1);
        let (t, b) = (triples.div_ceil(batches), bits.div_ceil(batches));
        let batch = BatchSpec {
            triples: t + b,
            randoms: b.max(1),
            masks: vec![0; parties],
        };
        PoolConfig {
            setup_values: Some(batches * input_len(&batch, 0)),
            batch,
            bits_per_batch: b,
            target: Levels {
                triples,
                randoms: 0,
                masks: vec![0; parties],
                bits,
            },
        }
    }
}

#[derive(Default)]
struct Stock {
    triples: VecDeque<Triple>,
    randoms: VecDeque<Share>,
    masks: Vec<VecDeque<InputMask>>,
    bits: VecDeque<Share>,
    batches: u64,
    failure: Option<Abort>,
}

impl Stock {
    fn levels(&self) -> Levels {
        Levels {
            triples: self.triples.len(),
            randoms: self.randoms.len(),
            masks: self.masks.iter().map(VecDeque::len).collect(),
            bits: self.bits.len(),
        }
    }

    fn below(&self, target: &Levels) -> bool {
        let l = self.levels();
        l.triples < target.triples
            || l.randoms < target.randoms
            || l.bits < target.bits
            || l.masks
                .iter()
                .zip(&target.masks)
                .any(|(have, want)| have < want)
    }

    fn covers(&self, req: &Requirements) -> bool {
        self.triples.len() >= req.triples
            && self.randoms.len() >= req.randoms
            && self.bits.len() >= req.bits
            && req
                .input_masks
                .iter()
                .enumerate()
                .all(|(o, &n)| self.masks.get(o).map_or(n == 0, |m| m.len() >= n))
    }
}

struct Shared {
    stock: Mutex<Stock>,
    /// Wakes the producer after material was taken.
    taken: Notify,
    /// Wakes consumers after a batch was added or the producer failed.
    added: Notify,
}

/// One party's preprocessing pool with its background producer.
pub struct Pool {
    party: PartyId,
    parties: usize,
    key: MacKeyShare,
    shared: Arc<Shared>,
    producer: JoinHandle<()>,
}

impl Pool {
    /// Runs the base-OT setup with the other parties over `transport`, then starts producing in
    /// the background. `key` is this party's MAC key share; every party calls this with its own.
    pub async fn start<T: Transport + 'static>(
        session: SessionId,
        key: MacKeyShare,
        mut transport: T,
        config: PoolConfig,
    ) -> Result<Pool, Abort> {
        let (party, parties) = (transport.party(), transport.parties());
        let setup = match config.setup_values {
            Some(values) => Setup::for_values(session, party, parties, key.clone(), values),
            None => Setup::new(session, party, parties, key.clone()),
        };
        let keys = run(setup, &mut transport).await?;
        let shared = Arc::new(Shared {
            stock: Mutex::new(Stock {
                masks: vec![VecDeque::new(); parties],
                ..Stock::default()
            }),
            taken: Notify::new(),
            added: Notify::new(),
        });
        let producer = tokio::spawn(produce(keys, transport, config, shared.clone()));
        Ok(Pool {
            party,
            parties,
            key,
            shared,
            producer,
        })
    }

    /// What the pool holds now.
    pub fn levels(&self) -> Levels {
        self.lock().levels()
    }

    /// How many batches have entered the pool.
    pub fn batches(&self) -> u64 {
        self.lock().batches
    }

    /// Why the producer stopped, if it did.
    pub fn failure(&self) -> Option<Abort> {
        self.lock().failure.clone()
    }

    /// Waits until the pool can serve `req` (or the producer has failed).
    pub async fn ready(&self, req: &Requirements) -> Result<(), Abort> {
        loop {
            let added = self.shared.added.notified();
            {
                let stock = self.lock();
                if stock.covers(req) {
                    return Ok(());
                }
                if let Some(f) = &stock.failure {
                    return Err(f.clone());
                }
            }
            added.await;
        }
    }

    /// Stops the producer and waits until it has stopped: a batch it was running is abandoned
    /// (poisoning the key if it was in its MAC check), and what is in stock stays available.
    /// Call it before deciding the key is sound.
    pub async fn stop(&mut self) {
        self.producer.abort();
        let _ = (&mut self.producer).await;
    }

    /// Waits until `n` random bits are available, then takes them.
    pub async fn take_bits(&self, n: usize) -> Result<Vec<Share>, Abort> {
        loop {
            let added = self.shared.added.notified();
            {
                let mut stock = self.lock();
                if stock.bits.len() >= n {
                    let bits = stock.bits.drain(..n).collect();
                    drop(stock);
                    self.shared.taken.notify_one();
                    return Ok(bits);
                }
                if let Some(f) = &stock.failure {
                    return Err(f.clone());
                }
            }
            added.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stock> {
        self.shared.stock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn draw<T>(
        &self,
        kind: &'static str,
        n: usize,
        pick: impl FnOnce(&mut Stock) -> Option<&mut VecDeque<T>>,
    ) -> Result<Vec<T>, PrepError> {
        let mut stock = self.lock();
        let failure = stock.failure.as_ref().map(|f| f.to_string());
        let pool = pick(&mut stock).expect("owner checked by the caller");
        if pool.len() < n {
            // Checked material stays usable after a later batch failed; only a shortfall reports it.
            if let Some(f) = failure {
                return Err(PrepError::Aborted(f));
            }
            return Err(PrepError::Exhausted {
                kind,
                wanted: n,
                available: pool.len(),
            });
        }
        let out = pool.drain(..n).collect();
        drop(stock);
        self.shared.taken.notify_one();
        Ok(out)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.producer.abort();
    }
}

impl Preprocessing for Pool {
    fn party(&self) -> PartyId {
        self.party
    }

    fn parties(&self) -> usize {
        self.parties
    }

    fn mac_key(&self) -> MacKeyShare {
        self.key.clone()
    }

    fn triples(&mut self, n: usize) -> Result<Vec<Triple>, PrepError> {
        self.draw("triples", n, |s| Some(&mut s.triples))
    }

    fn randoms(&mut self, n: usize) -> Result<Vec<Share>, PrepError> {
        self.draw("random values", n, |s| Some(&mut s.randoms))
    }

    fn input_masks(&mut self, owner: PartyId, n: usize) -> Result<Vec<InputMask>, PrepError> {
        if owner >= self.parties {
            return Err(PrepError::UnknownOwner {
                owner,
                parties: self.parties,
            });
        }
        self.draw("input masks", n, |s| s.masks.get_mut(owner))
    }

    fn bits(&mut self, n: usize) -> Result<Vec<Share>, PrepError> {
        self.draw("random bits", n, |s| Some(&mut s.bits))
    }
}

/// The producer loop: a batch whenever a level is below target, then bits from its output.
async fn produce<T: Transport>(
    mut keys: MascotKeys,
    mut transport: T,
    config: PoolConfig,
    shared: Arc<Shared>,
) {
    let result: Result<(), Abort> = async {
        let mut batches = 0u64;
        loop {
            loop {
                let taken = shared.taken.notified();
                if shared
                    .stock
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .below(&config.target)
                {
                    break;
                }
                taken.await;
            }
            let batch = Batch::new(&mut keys, config.batch.clone())
                .map_err(|e| Abort::Preprocessing(e.to_string()))?;
            let mut out = run(batch, &mut transport).await?;
            let bits = if config.bits_per_batch > 0 {
                let n = config
                    .bits_per_batch
                    .min(out.triples.len())
                    .min(out.randoms.len());
                let triples = out.triples.drain(..n).collect();
                let randoms = out.randoms.drain(..n).collect();
                make_bits(&keys, &mut transport, triples, randoms, batches).await?
            } else {
                Vec::new()
            };
            batches += 1;
            {
                let mut stock = shared.stock.lock().unwrap_or_else(|p| p.into_inner());
                stock.triples.extend(out.triples);
                stock.randoms.extend(out.randoms);
                for (pool, masks) in stock.masks.iter_mut().zip(out.masks) {
                    pool.extend(masks);
                }
                stock.bits.extend(bits);
                stock.batches = batches;
            }
            shared.added.notify_waiters();
        }
    }
    .await;
    if let Err(e) = result {
        shared
            .stock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failure = Some(e);
        shared.added.notify_waiters();
    }
}

/// Random bits from one batch's triples and random values, by an online session among the
/// producers (its own session id per batch).
async fn make_bits<T: Transport>(
    keys: &MascotKeys,
    transport: &mut T,
    triples: Vec<Triple>,
    randoms: Vec<Share>,
    batch: u64,
) -> Result<Vec<Share>, Abort> {
    let (party, parties) = (keys.party(), keys.parties());
    let n = triples.len();
    let material = Material {
        key: keys.mac_key().clone(),
        triples,
        randoms,
        input_masks: vec![Vec::new(); parties],
        bits: Vec::new(),
    };
    let (circuit, keep) = squares_circuit(parties, n);
    let mut h = blake3::Hasher::new_derive_key("conclave-mpc v1 bits session");
    h.update(&keys.session().0);
    h.update(&batch.to_le_bytes());
    let id = SessionId(h.finalize().as_bytes()[..16].try_into().expect("16 bytes"));
    let cfg = SessionConfig::new(id, party, parties);
    let mut session = Session::for_preprocessing(cfg, circuit, material)
        .map_err(|e| Abort::Preprocessing(e.to_string()))?;
    session.keep_shares(keep).expect("kept wires exist");
    let (squares, r) = run(Keeping(session), transport).await?;
    bits_from_squares(&squares, &r, party, keys.mac_key())
        .map_err(|e| Abort::Preprocessing(e.to_string()))
}
