//! The upload service: the rules, the uploads in progress and their
//! quotas, and the sweeper that expires what was abandoned.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::magic::FileType;
use super::storage::Storage;
use super::token::{Signer, Ticket, new_id};
use super::{Limits, Upload, UploadError, UploadedFile, Uploads};

/// What the app keeps in its state when uploads are on.
#[derive(Clone)]
pub(crate) struct UploadService(pub(crate) Arc<Service>);

pub(crate) struct Service {
    pub(crate) rules: HashMap<String, Arc<Upload>>,
    pub(crate) storage: Arc<dyn Storage>,
    signer: Signer,
    expire_after: Duration,
    pub(crate) chunk_size: usize,
    pub(crate) chunk_timeout: Duration,
    limits: Limits,
    /// Chunk requests being read or written, process-wide: memory is at
    /// most this many chunks.
    pub(crate) transfers: Semaphore,
    pub(crate) max_transfers: usize,
    table: Mutex<HashMap<String, Arc<Entry>>>,
    /// Uploads refused, cancelled or claimed, until their token expires:
    /// their token cannot start them again.
    tombstones: Mutex<HashMap<String, u64>>,
    pub(crate) received: AtomicU64,
    sweeping: AtomicBool,
}

/// One upload this process knows of.
pub(crate) struct Entry {
    pub(crate) ticket: Ticket,
    connection: Option<u64>,
    address: Option<IpAddr>,
    pub(crate) state: tokio::sync::Mutex<State>,
    /// Set by a cancel, which does not wait for a chunk being received.
    pub(crate) cancelled: AtomicBool,
}

#[derive(Default)]
pub(crate) struct State {
    /// Bytes stored; `None` until read from storage (after a restart).
    pub(crate) offset: Option<u64>,
    pub(crate) detected: Option<FileType>,
    /// Refused, cancelled, expired or claimed: its requests are answered 410.
    pub(crate) gone: bool,
}

/// Why a token is not accepted.
pub(crate) enum TokenError {
    Invalid,
    Expired,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Service {
    pub(crate) fn new(uploads: Uploads) -> Self {
        let storage = uploads.storage.unwrap_or_else(|| {
            Arc::new(super::LocalStorage::unchecked(
                std::env::temp_dir().join("liveview-uploads"),
            ))
        });
        let signer = uploads
            .secret
            .as_deref()
            .map_or_else(Signer::random, Signer::new);
        Self {
            rules: uploads
                .rules
                .into_iter()
                .map(|rule| (rule.name.clone(), Arc::new(rule)))
                .collect(),
            storage,
            signer,
            expire_after: uploads.expire_after,
            chunk_size: uploads.chunk_size,
            chunk_timeout: uploads.chunk_timeout,
            limits: uploads.limits,
            transfers: Semaphore::new(uploads.max_transfers),
            max_transfers: uploads.max_transfers,
            table: Mutex::default(),
            tombstones: Mutex::default(),
            received: AtomicU64::new(0),
            sweeping: AtomicBool::new(false),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn active(&self) -> usize {
        self.table().len()
    }

    /// The ticket of a token, if it is ours and not expired.
    pub(crate) fn ticket(&self, token: &str) -> Result<Ticket, TokenError> {
        let ticket = self.signer.verify(token).ok_or(TokenError::Invalid)?;
        if ticket.expires < unix_now() {
            return Err(TokenError::Expired);
        }
        Ok(ticket)
    }

    /// This process's entry for a ticket, made afresh when it has none (the
    /// upload was announced before a restart, or by another process).
    pub(crate) fn entry(&self, ticket: &Ticket) -> Arc<Entry> {
        if self.tombstones().contains_key(&ticket.id) {
            return Arc::new(Entry {
                ticket: ticket.clone(),
                connection: None,
                address: None,
                state: tokio::sync::Mutex::new(State {
                    gone: true,
                    ..State::default()
                }),
                cancelled: AtomicBool::new(true),
            });
        }
        self.table()
            .entry(ticket.id.clone())
            .or_insert_with(|| {
                Arc::new(Entry {
                    ticket: ticket.clone(),
                    connection: None,
                    address: None,
                    state: tokio::sync::Mutex::default(),
                    cancelled: AtomicBool::new(false),
                })
            })
            .clone()
    }

    fn tombstones(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.tombstones.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drop an upload that is over (its entry's state must be `gone`).
    pub(crate) fn forget(&self, ticket: &Ticket) {
        self.tombstones().insert(ticket.id.clone(), ticket.expires);
        self.table().remove(&ticket.id);
    }

    /// The stored length, read from storage the first time.
    pub(crate) async fn offset(&self, id: &str, state: &mut State) -> std::io::Result<u64> {
        if let Some(offset) = state.offset {
            return Ok(offset);
        }
        let offset = self.storage.len(id).await?;
        state.offset = Some(offset);
        Ok(offset)
    }

    /// Answer an announcement: a token for each file the rules and quotas
    /// allow, an error for the others. Nothing is stored yet.
    pub(crate) fn announce(
        self: &Arc<Self>,
        connection: u64,
        address: Option<IpAddr>,
        room: &str,
        upload: &str,
        files: &[(String, u64)],
    ) -> Vec<Value> {
        self.start_sweeper();
        let Some(rule) = self.rules.get(upload) else {
            return files
                .iter()
                .map(|_| json!({"error": "Uploads are not accepted here"}))
                .collect();
        };
        let mut table = self.table();
        let (mut conn_files, mut conn_bytes, mut addr_files, mut addr_bytes) = (0, 0, 0, 0);
        for entry in table.values() {
            if entry.connection == Some(connection) {
                conn_files += 1;
                conn_bytes += entry.ticket.size;
            }
            if address.is_some() && entry.address == address {
                addr_files += 1;
                addr_bytes += entry.ticket.size;
            }
        }
        let limits = &self.limits;
        let expires = unix_now() + self.expire_after.as_secs().max(1);
        files
            .iter()
            .enumerate()
            .map(|(index, (name, size))| {
                let size = *size;
                let refusal = if index >= rule.max_files {
                    Some(format!("Too many files (at most {})", rule.max_files))
                } else if size == 0 {
                    Some("The file is empty".to_owned())
                } else if size > rule.max_file_size {
                    Some(format!(
                        "File too large (at most {})",
                        human(rule.max_file_size)
                    ))
                } else if conn_files >= limits.connection_files
                    || addr_files >= limits.address_files
                {
                    Some("Too many uploads at once".to_owned())
                } else if conn_bytes + size > limits.connection_bytes
                    || addr_bytes + size > limits.address_bytes
                {
                    Some("Upload quota exceeded".to_owned())
                } else {
                    None
                };
                if let Some(error) = refusal {
                    return json!({"error": error});
                }
                conn_files += 1;
                addr_files += 1;
                conn_bytes += size;
                addr_bytes += size;
                let ticket = Ticket {
                    id: new_id(),
                    upload: upload.to_owned(),
                    size,
                    room: room.to_owned(),
                    expires,
                    name: name.chars().take(255).collect(),
                };
                let token = self.signer.sign(&ticket);
                table.insert(
                    ticket.id.clone(),
                    Arc::new(Entry {
                        ticket,
                        connection: Some(connection),
                        address,
                        state: tokio::sync::Mutex::new(State {
                            offset: Some(0),
                            ..State::default()
                        }),
                        cancelled: AtomicBool::new(false),
                    }),
                );
                json!({"token": token, "url": format!("{}{token}", super::ROUTE_PREFIX)})
            })
            .collect()
    }

    /// Hand a finished upload to a handler of `room`, once.
    pub(crate) async fn claim(
        &self,
        token: &str,
        room: &str,
        upload: &str,
    ) -> Result<UploadedFile, UploadError> {
        let ticket = self.ticket(token).map_err(|e| match e {
            TokenError::Invalid => UploadError::Invalid,
            TokenError::Expired => UploadError::Expired,
        })?;
        if ticket.room != room || ticket.upload != upload {
            return Err(UploadError::Invalid);
        }
        let entry = self.entry(&ticket);
        let mut state = entry.state.lock().await;
        if state.gone || entry.cancelled.load(Ordering::Acquire) {
            return Err(UploadError::Gone);
        }
        let offset = self.offset(&ticket.id, &mut state).await?;
        if offset != ticket.size {
            return Err(UploadError::Incomplete);
        }
        let detected = match state.detected {
            Some(detected) => Some(detected),
            None => FileType::detect(&self.storage.read_at(&ticket.id, 0, FileType::HEAD).await?),
        };
        let rule = self.rules.get(upload).ok_or(UploadError::Invalid)?;
        if !rule.accepts(detected) {
            return Err(UploadError::Invalid);
        }
        state.gone = true;
        drop(state);
        self.forget(&ticket);
        Ok(UploadedFile::new(ticket, detected, self.storage.clone()))
    }

    /// Remove what expired: entries whose token did, and files in progress
    /// nobody wrote to for the whole lifetime of a token.
    pub(crate) async fn sweep(&self) -> std::io::Result<usize> {
        let now = unix_now();
        let expired: Vec<Arc<Entry>> = {
            let mut table = self.table();
            let ids: Vec<String> = table
                .iter()
                .filter(|(_, e)| e.ticket.expires < now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| table.remove(id)).collect()
        };
        self.tombstones().retain(|_, expires| *expires >= now);
        let mut removed = 0;
        for entry in expired {
            let mut state = entry.state.lock().await;
            if !state.gone {
                state.gone = true;
                self.storage.remove(&entry.ticket.id).await?;
                removed += 1;
            }
        }
        // Files nobody wrote to since before the oldest live token was made
        // (tokens count whole seconds: two more make it sure).
        let before = SystemTime::now()
            .checked_sub(self.expire_after + Duration::from_secs(2))
            .unwrap_or(UNIX_EPOCH);
        Ok(removed + self.storage.sweep(before).await?)
    }

    /// Start the sweeper once, from inside the runtime; it stops when the
    /// service is dropped.
    pub(crate) fn start_sweeper(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let every =
            (self.expire_after / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(service) = weak.upgrade() else { break };
                match service.sweep().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(target: "liveview", removed = n, "expired uploads removed")
                    }
                    Err(err) => {
                        tracing::warn!(target: "liveview", error = %err, "upload sweep failed")
                    }
                }
            }
        });
    }
}

/// `10 MB`, `512 KB`, `100 bytes` (powers of 1024).
pub(crate) fn human(bytes: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = 1024 * KB;
    const GB: u64 = 1024 * MB;
    let (unit, name) = match bytes {
        b if b >= GB => (GB, "GB"),
        b if b >= MB => (MB, "MB"),
        b if b >= KB => (KB, "KB"),
        _ => return format!("{bytes} bytes"),
    };
    if bytes.is_multiple_of(unit) {
        format!("{} {name}", bytes / unit)
    } else {
        format!("{:.1} {name}", bytes as f64 / unit as f64)
    }
}
