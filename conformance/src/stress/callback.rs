//! The callback adapter, instrumented: every operation a `begin_*` whose callback
//! calls `end_*`, checks what a callback may check (the operation is complete, a
//! second `end_*` gives `AlreadyEnded`) and reports through the operation's `Done`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use asyncresult_callback::prelude::{
    callback, AsyncCallback, AsyncResult, Domain, Error, Protocol, Socket, SocketFlags, Type,
};

use super::lock;
use super::net::{describe, Bound, Net, Started};
use super::tally::{op, Done, Tally, Waiter};
use crate::harness::Res;
use crate::loopback;

/// The callback adapter: `begin_*` with a callback that calls `end_*` and reports.
#[derive(Debug)]
pub(super) struct CallbackNet {
    pub(super) tally: Arc<Tally>,
}

type Slot<U> = Arc<Mutex<Option<Done<U>>>>;

fn take<U>(slot: &Slot<U>) -> Option<Done<U>> {
    lock(slot).take()
}

/// A callback that ends its operation with `end`, checks what a callback may check,
/// and reports through `slot`.
fn reporting<T, U>(
    slot: &Slot<Res<U>>,
    tally: &Arc<Tally>,
    end: impl Fn(&AsyncResult<T>) -> Res<U> + Send + 'static,
) -> Option<AsyncCallback<T>>
where
    T: Send + 'static,
    U: Send + 'static,
{
    let (slot, tally) = (Arc::clone(slot), Arc::clone(tally));
    callback(move |ar: AsyncResult<T>| {
        if !ar.is_completed() {
            tally.anomaly("a callback ran before its operation completed".into());
        }
        let out = end(&ar);
        match end(&ar) {
            Err(Error::AlreadyEnded) => {}
            again => tally.anomaly(format!(
                "a second end_* gave {} instead of AlreadyEnded",
                describe(&again)
            )),
        }
        match take(&slot) {
            Some(done) => done.report(out),
            None => tally.anomaly("a callback ran for an operation whose begin failed".into()),
        }
    })
}

/// What a `begin_*` returned: the started operation, or its error reported at once
/// (no callback will run for it).
fn begun<T: Send + 'static, U>(
    tally: &Tally,
    slot: Slot<Res<U>>,
    waiter: Waiter<Res<U>>,
    begin: Res<AsyncResult<T>>,
) -> Started<Res<U>> {
    match begin {
        Ok(ar) => Started {
            waiter,
            cancel: Some(Box::new(move || ar.cancel())),
        },
        Err(e) => {
            match take(&slot) {
                Some(done) => done.report(Err(e)),
                None => tally.anomaly(format!("begin_* failed ({e:?}) but its callback ran")),
            }
            Started {
                waiter,
                cancel: None,
            }
        }
    }
}

impl CallbackNet {
    fn op<U>(&self) -> (Slot<U>, Waiter<U>) {
        let (done, waiter) = op(&self.tally);
        (Arc::new(Mutex::new(Some(done))), waiter)
    }
}

impl Net for CallbackNet {
    type Stream = Socket;
    type Listener = Socket;

    fn name(&self) -> &'static str {
        "callback"
    }

    fn listen(&self) -> Result<Socket, String> {
        Socket::listen_tcp(loopback(), 128).map_err(|e| format!("listen: {e}"))
    }

    fn listener_socket(&self, l: &Socket) -> Socket {
        l.clone()
    }

    fn accept(&self, l: &Socket) -> Started<Res<Socket>> {
        let (slot, waiter) = self.op();
        let l2 = l.clone();
        let cb = reporting(&slot, &self.tally, move |ar| l2.end_accept(ar));
        begun(&self.tally, slot, waiter, l.begin_accept(cb, None))
    }

    fn connect(&self, to: SocketAddr) -> Started<Res<Socket>> {
        let (slot, waiter) = self.op();
        let socket = match Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP)) {
            Ok(socket) => socket,
            Err(e) => return begun::<(), _>(&self.tally, slot, waiter, Err(e)),
        };
        let s2 = socket.clone();
        let cb = reporting(&slot, &self.tally, move |ar| {
            s2.end_connect(ar).map(|()| s2.clone())
        });
        begun(
            &self.tally,
            slot,
            waiter,
            socket.begin_connect(to, cb, None),
        )
    }

    fn socket(&self, s: &Socket) -> Socket {
        s.clone()
    }

    fn send_batch(
        &self,
        s: &Socket,
        bufs: Vec<Vec<u8>>,
        _cancel: Option<usize>,
    ) -> Vec<Started<Res<usize>>> {
        bufs.into_iter()
            .map(|buf| self.send(s, buf, Bound::Wait))
            .collect()
    }

    fn send(&self, s: &Socket, buf: Vec<u8>, _bound: Bound) -> Started<Res<usize>> {
        let (slot, waiter) = self.op();
        let s2 = s.clone();
        let cb = reporting(&slot, &self.tally, move |ar| s2.end_send(ar));
        begun(
            &self.tally,
            slot,
            waiter,
            s.begin_send(buf, SocketFlags::NONE, cb, None),
        )
    }

    fn forget_send(&self, s: &Socket, buf: Vec<u8>) -> Waiter<Option<Res<usize>>> {
        // The result is dropped here; the callback still reports (to nobody).
        let started = self.send(s, buf, Bound::Wait);
        match started.cancel {
            Some(_) => Waiter::ready(None),
            None => Waiter::ready(started.waiter.rx.try_recv().ok()),
        }
    }

    fn receive(&self, s: &Socket, capacity: usize, _bound: Bound) -> Started<Res<Vec<u8>>> {
        let (slot, waiter) = self.op();
        let (s2, tally) = (s.clone(), Arc::clone(&self.tally));
        let cb = reporting(&slot, &self.tally, move |ar| {
            s2.end_receive::<Vec<u8>>(ar).map(|(n, buf)| {
                if n != buf.len() {
                    tally.anomaly(format!("a receive reported {n} bytes in {}", buf.len()));
                }
                buf
            })
        });
        let begin = s.begin_receive(Vec::with_capacity(capacity), SocketFlags::NONE, cb, None);
        begun(&self.tally, slot, waiter, begin)
    }

    fn receive_once(&self, _: &Socket, _: usize) -> Option<Waiter<Option<Res<Vec<u8>>>>> {
        None
    }
}
