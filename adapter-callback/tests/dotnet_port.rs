//! What someone porting .NET socket code relies on: Microsoft's "Asynchronous Client
//! Socket Example" and "Asynchronous Server Socket Example" ported line by line
//! (StateObject, BeginConnect/EndConnect in ConnectCallback, a BeginReceive loop until
//! "<EOF>" and until 0, the server's BeginAccept loop paced by a ManualResetEvent),
//! many clients at once; and the IAsyncResult semantics such code leans on
//! (IsCompleted, CompletedSynchronously, AsyncState, AsyncWaitHandle), the strictness
//! of the End methods and the errors a SocketException would carry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use asyncresult_callback::prelude::*;
use common::{bounded, localhost, reset, secs, tcp_pair, tcp_to_std};

// ---- .NET's ManualResetEvent --------------------------------------------------------

/// `System.Threading.ManualResetEvent`, with a bounded `WaitOne`.
#[derive(Default)]
struct ManualResetEvent {
    set: Mutex<bool>,
    cv: Condvar,
}

impl ManualResetEvent {
    fn set(&self) {
        *self.set.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn reset(&self) {
        *self.set.lock().unwrap() = false;
    }
    /// `WaitOne(timeout)`: panics (fails the test) on timeout.
    fn wait_one(&self, what: &str) {
        let guard = self.set.lock().unwrap();
        let (guard, timeout) = self
            .cv
            .wait_timeout_while(guard, Duration::from_secs(30), |set| !*set)
            .unwrap();
        assert!(!timeout.timed_out() && *guard, "{what}: WaitOne timed out");
    }
}

const BUFFER_SIZE: usize = 1024;

// ---- the server ("Asynchronous Server Socket Example") --------------------------------

/// `StateObject` of the server example: the work socket, the receive buffer (travels
/// with the operation here) and the received text.
struct ServerState {
    work_socket: Socket,
    sb: Mutex<String>,
}

struct Server {
    all_done: ManualResetEvent,
    stop: AtomicBool,
    /// Connections accepted, messages echoed, and failures met in callbacks.
    accepted: AtomicUsize,
    echoed: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

/// The listener is the `state` of `BeginAccept`, as in the example.
struct AcceptState {
    listener: Socket,
    server: Arc<Server>,
}

/// `StartListening`: the accept loop on its own thread, one pending accept at a time,
/// paced by `allDone`.
fn start_listening(listener: Socket, server: Arc<Server>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        while !server.stop.load(Ordering::Acquire) {
            server.all_done.reset();
            let begun = listener.begin_accept(
                callback(accept_callback),
                state(AcceptState {
                    listener: listener.clone(),
                    server: server.clone(),
                }),
            );
            if begun.is_err() {
                break; // the listener was closed
            }
            server.all_done.wait_one("accept loop");
        }
    })
}

fn fail(server: &Server, what: String) {
    server.failures.lock().unwrap().push(what);
}

fn accept_callback(ar: AsyncResult<Socket>) {
    // Signal the main thread to continue.
    let st = ar.state::<AcceptState>().expect("AcceptState");
    st.server.all_done.set();
    assert!(ar.is_completed(), "IsCompleted in the callback");
    let handler = match st.listener.end_accept(&ar) {
        Ok(h) => h,
        Err(Error::Disposed) => return, // listener closed at the end of the test
        Err(e) => return fail(&st.server, format!("EndAccept: {e}")),
    };
    st.server.accepted.fetch_add(1, Ordering::Relaxed);
    let so: AsyncState = Arc::new((
        ServerState {
            work_socket: handler.clone(),
            sb: Mutex::new(String::new()),
        },
        st.server.clone(),
    ));
    if let Err(e) = handler.begin_receive(
        vec![0u8; BUFFER_SIZE].into_boxed_slice(),
        SocketFlags::NONE,
        callback(read_callback),
        Some(so),
    ) {
        fail(&st.server, format!("BeginReceive: {e}"));
    }
}

fn read_callback(ar: AsyncResult<(usize, Box<[u8]>)>) {
    let (so, server) = ar
        .state::<(ServerState, Arc<Server>)>()
        .expect("StateObject");
    let handler = &so.work_socket;
    let (bytes_read, buffer) = match handler.end_receive(&ar) {
        Ok(r) => r,
        Err(e) => return fail(server, format!("EndReceive: {e}")),
    };
    if bytes_read > 0 {
        let content = {
            let mut sb = so.sb.lock().unwrap();
            sb.push_str(std::str::from_utf8(&buffer[..bytes_read]).expect("ascii"));
            sb.clone()
        };
        if content.contains("<EOF>") {
            // All the data has been read from the client: echo it back.
            send_back(handler, content, server.clone());
        } else {
            // Not all data received. Get more.
            let again = handler.begin_receive(
                buffer,
                SocketFlags::NONE,
                callback(read_callback),
                ar.async_state().cloned(),
            );
            if let Err(e) = again {
                fail(server, format!("BeginReceive again: {e}"));
            }
        }
    } else {
        fail(server, "the client shut down before <EOF>".into());
    }
}

fn send_back(handler: &Socket, data: String, server: Arc<Server>) {
    let begun = handler.begin_send(
        data.into_bytes(),
        SocketFlags::NONE,
        callback(send_callback),
        state((handler.clone(), server.clone())),
    );
    if let Err(e) = begun {
        fail(&server, format!("BeginSend: {e}"));
    }
}

fn send_callback(ar: AsyncResult<usize>) {
    let (handler, server) = ar.state::<(Socket, Arc<Server>)>().expect("handler");
    match handler.end_send(&ar) {
        Ok(_) => {
            server.echoed.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => fail(server, format!("EndSend: {e}")),
    }
    let _ = handler.shutdown(Shutdown::Both);
    handler.close();
}

// ---- the client ("Asynchronous Client Socket Example") --------------------------------

/// The client's events and response (static fields in the example; one per client
/// here, so that many run at once).
#[derive(Default)]
struct Client {
    connect_done: ManualResetEvent,
    send_done: ManualResetEvent,
    receive_done: ManualResetEvent,
    response: Mutex<String>,
    failures: Mutex<Vec<String>>,
}

/// `StateObject` of the client example.
struct ClientState {
    work_socket: Socket,
    sb: Mutex<String>,
    client: Arc<Client>,
}

fn client_fail(c: &Client, what: String) {
    c.failures.lock().unwrap().push(what);
}

/// `StartClient`: connect, send, receive until the server shuts down, print.
fn start_client(remote: SocketAddr, message: String) -> Result<String, String> {
    let c = Arc::new(Client::default());
    let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    client
        .begin_connect(
            remote,
            callback(connect_callback),
            state((client.clone(), c.clone())),
        )
        .unwrap();
    c.connect_done.wait_one("connectDone");

    client
        .begin_send(
            message.into_bytes(),
            SocketFlags::NONE,
            callback(client_send_callback),
            state((client.clone(), c.clone())),
        )
        .unwrap();
    c.send_done.wait_one("sendDone");

    let so = ClientState {
        work_socket: client.clone(),
        sb: Mutex::new(String::new()),
        client: c.clone(),
    };
    client
        .begin_receive(
            Vec::with_capacity(BUFFER_SIZE),
            SocketFlags::NONE,
            callback(receive_callback),
            state(so),
        )
        .unwrap();
    c.receive_done.wait_one("receiveDone");

    client.shutdown(Shutdown::Both).unwrap();
    client.close();
    let failures = c.failures.lock().unwrap();
    if failures.is_empty() {
        Ok(c.response.lock().unwrap().clone())
    } else {
        Err(failures.join("; "))
    }
}

fn connect_callback(ar: AsyncResult<()>) {
    let (client, c) = ar.state::<(Socket, Arc<Client>)>().expect("client");
    if let Err(e) = client.end_connect(&ar) {
        client_fail(c, format!("EndConnect: {e}"));
    }
    c.connect_done.set();
}

fn client_send_callback(ar: AsyncResult<usize>) {
    let (client, c) = ar.state::<(Socket, Arc<Client>)>().expect("client");
    if let Err(e) = client.end_send(&ar) {
        client_fail(c, format!("EndSend: {e}"));
    }
    c.send_done.set();
}

fn receive_callback(ar: AsyncResult<(usize, Vec<u8>)>) {
    let so = ar.state::<ClientState>().expect("StateObject");
    let client = &so.work_socket;
    match client.end_receive(&ar) {
        Ok((bytes_read, buffer)) if bytes_read > 0 => {
            so.sb
                .lock()
                .unwrap()
                .push_str(std::str::from_utf8(&buffer).expect("ascii"));
            // Get the rest of the data.
            let again = client.begin_receive(
                buffer,
                SocketFlags::NONE,
                callback(receive_callback),
                ar.async_state().cloned(),
            );
            if let Err(e) = again {
                client_fail(&so.client, format!("BeginReceive: {e}"));
                so.client.receive_done.set();
            }
        }
        Ok(_) => {
            // All the data has arrived; put it in response.
            *so.client.response.lock().unwrap() = so.sb.lock().unwrap().clone();
            so.client.receive_done.set();
        }
        Err(e) => {
            client_fail(&so.client, format!("EndReceive: {e}"));
            so.client.receive_done.set();
        }
    }
}

fn message(i: usize) -> String {
    // Sizes from a few bytes to a few hundred KiB (several receive loops on both ends,
    // and echoes that do not fit the socket buffer at once).
    let len = match i % 4 {
        0 => 3,
        1 => 1500,
        2 => 40_000,
        _ => 150_000 + i * 7,
    };
    let body: String = (0..len)
        .map(|k| char::from(b'a' + ((k * 7 + i) % 26) as u8))
        .collect();
    format!("client {i}: {body}<EOF>")
}

/// Both example programs in one process: the server's accept loop and 48 clients at
/// once, each on its own thread as the client example's `Main`. Every message comes
/// back whole, every receive loop ends at 0, the accept loop keeps accepting.
#[test]
fn microsoft_async_client_and_server_examples_many_clients() {
    bounded(secs(120), || {
        const CLIENTS: usize = 48;
        let listener = Socket::listen_tcp(localhost(), 100).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Arc::new(Server {
            all_done: ManualResetEvent::default(),
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            echoed: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
        });
        let accept_loop = start_listening(listener.clone(), server.clone());

        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                thread::spawn(move || {
                    let msg = message(i);
                    let response = start_client(addr, msg.clone());
                    (i, msg, response)
                })
            })
            .collect();
        for c in clients {
            let (i, msg, response) = c.join().unwrap();
            let response = response.unwrap_or_else(|e| panic!("client {i}: {e}"));
            assert_eq!(response.len(), msg.len(), "client {i}: echo length");
            assert!(response == msg, "client {i}: echo differs");
        }
        assert_eq!(server.accepted.load(Ordering::Relaxed), CLIENTS);
        assert_eq!(server.echoed.load(Ordering::Relaxed), CLIENTS);
        assert!(
            server.failures.lock().unwrap().is_empty(),
            "{:?}",
            server.failures.lock().unwrap()
        );

        // The loop still accepts: one more client, then stop.
        let last = start_client(addr, "last<EOF>".into()).unwrap();
        assert_eq!(last, "last<EOF>");
        server.stop.store(true, Ordering::Release);
        listener.close(); // the pending BeginAccept completes (Disposed), the loop ends
        accept_loop.join().unwrap();
        assert_eq!(server.accepted.load(Ordering::Relaxed), CLIENTS + 1);
    });
}

/// The server example's pattern taken further: every callback begins the next
/// operation from inside itself (begin → callback → end → begin), 20,000 steps of
/// one-byte echoes on one connection, without stack growth or deadlock.
#[test]
fn begin_end_begin_chains_from_callbacks_run_long_without_stack_growth() {
    const STEPS: usize = 20_000;
    struct Chain {
        s: Socket,
        left: AtomicUsize,
        done: mpsc::Sender<Result<(), String>>,
    }
    thread_local! {
        static STACK_BASE: RefCell<Option<usize>> = const { RefCell::new(None) };
    }
    fn stack_addr() -> usize {
        let x = 0u8;
        std::ptr::addr_of!(x) as usize
    }
    fn on_receive(ar: AsyncResult<(usize, Vec<u8>)>) {
        let ch = ar.state::<Chain>().unwrap();
        let (n, buf) = match ch.s.end_receive(&ar) {
            Ok(r) => r,
            Err(e) => return ch.done.send(Err(format!("receive: {e}"))).unwrap(),
        };
        if n == 0 {
            return ch
                .done
                .send(Err("unexpected end of stream".into()))
                .unwrap();
        }
        // The stack does not grow step after step (loops, not recursion): on each
        // callback thread, callbacks start at about the same depth.
        {
            let here = stack_addr();
            let base = STACK_BASE.with(|b| *b.borrow_mut().get_or_insert(here));
            if base.abs_diff(here) > 256 << 10 {
                return ch.done.send(Err("the stack grows".into())).unwrap();
            }
        }
        ch.s.begin_send(
            buf,
            SocketFlags::NONE,
            callback(on_send),
            ar.async_state().cloned(),
        )
        .unwrap();
    }
    fn on_send(ar: AsyncResult<usize>) {
        let ch = ar.state::<Chain>().unwrap();
        if let Err(e) = ch.s.end_send(&ar) {
            return ch.done.send(Err(format!("send: {e}"))).unwrap();
        }
        if ch.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            return ch.done.send(Ok(())).unwrap();
        }
        ch.s.begin_receive(
            Vec::with_capacity(1),
            SocketFlags::NONE,
            callback(on_receive),
            ar.async_state().cloned(),
        )
        .unwrap();
    }
    bounded(secs(120), || {
        let (ours, mut theirs) = tcp_to_std();
        ours.set_nodelay(true).unwrap();
        theirs.set_nodelay(true).unwrap();
        let (tx, rx) = mpsc::channel();
        let st: AsyncState = Arc::new(Chain {
            s: ours.clone(),
            left: AtomicUsize::new(STEPS),
            done: tx,
        });
        ours.begin_receive(
            Vec::with_capacity(1),
            SocketFlags::NONE,
            callback(on_receive),
            Some(st),
        )
        .unwrap();
        let peer = thread::spawn(move || {
            let mut b = [0u8; 1];
            for i in 0..STEPS {
                theirs.write_all(&[i as u8]).unwrap();
                theirs.read_exact(&mut b).unwrap();
                assert_eq!(b[0], i as u8);
            }
        });
        rx.recv_timeout(secs(110)).unwrap().unwrap();
        peer.join().unwrap();
    });
}

// ---- IAsyncResult ---------------------------------------------------------------------

/// What a callback saw of its result.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    completed: bool,
    sync: bool,
    same_state: bool,
    thread: ThreadId,
}

thread_local! {
    static IN_BEGIN: Cell<bool> = const { Cell::new(false) };
}

fn seeing<T: Send + 'static>(
    expected_state: AsyncState,
    tx: mpsc::Sender<(Seen, AsyncResult<T>)>,
) -> Option<AsyncCallback<T>> {
    callback(move |ar: AsyncResult<T>| {
        assert!(!IN_BEGIN.with(Cell::get), "callback ran inside begin_*");
        let seen = Seen {
            completed: ar.is_completed(),
            sync: ar.completed_synchronously(),
            same_state: ar
                .async_state()
                .is_some_and(|s| Arc::ptr_eq(s, &expected_state)),
            thread: thread::current().id(),
        };
        tx.send((seen, ar)).unwrap();
    })
}

fn begin<T>(f: impl FnOnce() -> T) -> T {
    IN_BEGIN.with(|b| b.set(true));
    let out = f();
    IN_BEGIN.with(|b| b.set(false));
    out
}

/// Checks one operation's IAsyncResult across its life: in the callback, after `wait`,
/// after end_*, on a clone, after a second end.
fn check_result<T: Send + 'static + std::fmt::Debug>(
    what: &str,
    ar: &AsyncResult<T>,
    st: &AsyncState,
    rx: &mpsc::Receiver<(Seen, AsyncResult<T>)>,
    expect_sync: Option<bool>,
    end: impl Fn(&AsyncResult<T>) -> Result<T, Error>,
) -> T {
    let begin_sync = ar.completed_synchronously();
    if begin_sync {
        assert!(
            ar.is_completed(),
            "{what}: sync but not completed at return"
        );
    }
    if let Some(sync) = expect_sync {
        assert_eq!(begin_sync, sync, "{what}: completed_synchronously");
    }
    ar.wait();
    assert!(ar.is_completed(), "{what}: completed after wait");
    let (seen, in_cb) = rx.recv_timeout(secs(20)).expect("callback ran");
    assert!(seen.completed, "{what}: IsCompleted in the callback");
    assert_eq!(seen.sync, begin_sync, "{what}: sync seen by the callback");
    assert!(seen.same_state, "{what}: AsyncState is the Arc passed");
    assert_ne!(
        seen.thread,
        thread::current().id(),
        "{what}: callback thread"
    );
    assert!(Arc::ptr_eq(ar.async_state().unwrap(), st));
    // The callback's AsyncResult is this operation's: ending it ends ours.
    let out = end(&in_cb).unwrap_or_else(|e| panic!("{what}: end in callback's ar: {e}"));
    assert!(matches!(end(ar), Err(Error::AlreadyEnded)), "{what}");
    assert!(
        ar.is_completed() && ar.wait_timeout(Duration::ZERO),
        "{what}"
    );
    ar.wait(); // returns at once after end_*
    let clone = ar.clone();
    assert!(clone.wait_timeout(Duration::from_millis(1)));
    assert_eq!(clone.completed_synchronously(), begin_sync);
    assert!(!ar.cancel(), "{what}: cancel after completion");
    out
}

/// Every kind of operation: IsCompleted is true in the callback and after wait;
/// CompletedSynchronously is the same before and in the callback, and true only when
/// begin_* finished it; AsyncState is the exact Arc; the callback never runs inside
/// begin_* nor on the caller's thread; wait/wait_timeout work after end_*.
#[test]
fn iasyncresult_properties_for_every_kind() {
    bounded(secs(30), || {
        let st: AsyncState = Arc::new(String::from("state"));
        let listener = Socket::listen_tcp(localhost(), 8).unwrap();
        let laddr = listener.local_addr().unwrap();

        // Accept: pending (no client yet), then completed by a connect.
        let (tx, rx) = mpsc::channel();
        let l = listener.clone();
        let ar = begin(|| listener.begin_accept(seeing(st.clone(), tx), Some(st.clone()))).unwrap();
        assert!(!ar.is_completed() && !ar.completed_synchronously());
        assert!(!ar.wait_timeout(Duration::from_millis(20)));
        let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let (ctx, crx) = mpsc::channel();
        let car = begin(|| client.begin_connect(laddr, seeing(st.clone(), ctx), Some(st.clone())))
            .unwrap();
        let server = check_result("accept", &ar, &st, &rx, Some(false), |a| l.end_accept(a));
        check_result("connect", &car, &st, &crx, None, |a| client.end_connect(a));

        // Accept with a connection already waiting: finished inside begin_accept.
        let _c2 = Socket::connect_tcp(laddr).unwrap();
        let (tx, rx) = mpsc::channel();
        let ar = begin(|| listener.begin_accept(seeing(st.clone(), tx), Some(st.clone()))).unwrap();
        let _s2 = check_result("accept ready", &ar, &st, &rx, Some(true), |a| {
            l.end_accept(a)
        });

        // Send on an idle socket: the fast path.
        let (tx, rx) = mpsc::channel();
        let ar = begin(|| {
            client.begin_send(
                b"hello".to_vec(),
                SocketFlags::NONE,
                seeing(st.clone(), tx),
                Some(st.clone()),
            )
        })
        .unwrap();
        assert_eq!(
            check_result("send", &ar, &st, &rx, Some(true), |a| client.end_send(a)),
            5
        );

        // Vectored send: ended by end_send.
        let (tx, rx) = mpsc::channel();
        let ar = begin(|| {
            client.begin_send_vectored(
                vec![b"ab".to_vec(), b"cd".to_vec()],
                SocketFlags::NONE,
                seeing(st.clone(), tx),
                Some(st.clone()),
            )
        })
        .unwrap();
        assert_eq!(
            check_result("vectored", &ar, &st, &rx, Some(true), |a| client
                .end_send(a)),
            4
        );

        // Receive with data already there: synchronous; then one that waits.
        let (tx, rx) = mpsc::channel();
        let mut got = Vec::new();
        while got.len() < 9 {
            let ar = begin(|| {
                server.begin_receive(
                    Vec::with_capacity(64),
                    SocketFlags::NONE,
                    seeing(st.clone(), tx.clone()),
                    Some(st.clone()),
                )
            })
            .unwrap();
            let (_, buf) = check_result("receive", &ar, &st, &rx, None, |a| server.end_receive(a));
            got.extend_from_slice(&buf);
        }
        assert_eq!(got, b"helloabcd");
        let ar = begin(|| {
            server.begin_receive(
                Vec::with_capacity(64),
                SocketFlags::NONE,
                seeing(st.clone(), tx.clone()),
                Some(st.clone()),
            )
        })
        .unwrap();
        assert!(!ar.completed_synchronously());
        client
            .end_send(
                &client
                    .begin_send(b"z", SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap();
        let (n, _) = check_result("receive pending", &ar, &st, &rx, Some(false), |a| {
            server.end_receive(a)
        });
        assert_eq!(n, 1);

        // UDP: send_to (synchronous), receive_from (pending, then completed).
        let u1 = Socket::bind_udp(localhost()).unwrap();
        let u2 = Socket::bind_udp(localhost()).unwrap();
        let (rtx, rrx) = mpsc::channel();
        let rar = begin(|| {
            u2.begin_receive_from(
                Vec::with_capacity(64),
                SocketFlags::NONE,
                seeing(st.clone(), rtx),
                Some(st.clone()),
            )
        })
        .unwrap();
        assert!(!rar.completed_synchronously());
        let (tx, rx) = mpsc::channel();
        let ar = begin(|| {
            u1.begin_send_to(
                b"dgram".to_vec(),
                SocketFlags::NONE,
                u2.local_addr().unwrap(),
                seeing(st.clone(), tx),
                Some(st.clone()),
            )
        })
        .unwrap();
        assert_eq!(
            check_result("send_to", &ar, &st, &rx, Some(true), |a| u1.end_send_to(a)),
            5
        );
        let (n, _, from) = check_result("receive_from", &rar, &st, &rrx, Some(false), |a| {
            u2.end_receive_from(a)
        });
        assert_eq!((n, from), (5, u1.local_addr().unwrap()));
    });
}

/// A synchronous completion's callback, begun from a user thread, runs on another
/// thread and still reports CompletedSynchronously; begun from inside a callback, it
/// runs after that callback returns (never inside begin_*), on the callback thread.
#[test]
fn completed_synchronously_holds_when_the_callback_runs_later_on_another_thread() {
    bounded(secs(20), || {
        let (a, _b) = tcp_pair();
        let (tx, rx) = mpsc::channel();
        let a2 = a.clone();
        let outer_returned = Arc::new(AtomicBool::new(false));
        let flag = outer_returned.clone();
        let ar = a
            .begin_send(
                b"1".to_vec(),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<usize>| {
                    let first_thread = thread::current().id();
                    assert!(ar.completed_synchronously());
                    a2.end_send(&ar).unwrap();
                    let tx2 = tx.clone();
                    let flag2 = flag.clone();
                    let inner = begin(|| {
                        a2.begin_send(
                            b"2".to_vec(),
                            SocketFlags::NONE,
                            callback(move |ar: AsyncResult<usize>| {
                                // The outer callback has returned by now.
                                tx2.send((
                                    ar.completed_synchronously(),
                                    flag2.load(Ordering::Acquire),
                                    thread::current().id() == first_thread,
                                ))
                                .unwrap();
                            }),
                            None,
                        )
                    })
                    .unwrap();
                    assert!(inner.completed_synchronously());
                    flag.store(true, Ordering::Release);
                }),
                None,
            )
            .unwrap();
        assert!(ar.completed_synchronously());
        let (sync, outer_done, _same_thread) = rx.recv_timeout(secs(10)).unwrap();
        assert!(sync, "inner CompletedSynchronously");
        assert!(
            outer_done,
            "the continuation ran before its begin_*'s callback returned"
        );
        let _ = outer_returned;
    });
}

/// An AsyncResult outlives every handle of its socket: its properties, state and
/// wait still work; a pending one completes (the socket was disposed) and its callback
/// runs once.
#[test]
fn an_async_result_outlives_its_socket() {
    bounded(secs(20), || {
        let (a, b) = tcp_pair();
        let done = a
            .begin_send(b"x".to_vec(), SocketFlags::NONE, None, state(7u32))
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let pending = a
            .begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    tx.send(ar.is_completed()).unwrap();
                }),
                state(8u32),
            )
            .unwrap();
        drop(a); // the last handle: disposes the socket
        assert!(pending.wait_timeout(secs(10)), "disposal completes it");
        assert!(rx.recv_timeout(secs(10)).unwrap());
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err(), "once");
        assert_eq!(pending.state::<u32>(), Some(&8));
        assert_eq!(done.state::<u32>(), Some(&7));
        assert!(done.is_completed() && done.wait_timeout(Duration::ZERO));
        assert!(!pending.cancel() && !done.cancel());
        let _ = format!("{pending:?} {done:?}");
        // Another socket cannot end it.
        assert!(matches!(b.end_receive(&pending), Err(Error::ForeignResult)));
        assert!(matches!(b.end_send(&done), Err(Error::ForeignResult)));
    });
}

/// The StateObject pattern keeps the socket alive in the state; ending through it
/// after every other handle has gone works.
#[test]
fn the_socket_kept_in_the_state_ends_the_operation_after_other_handles_go() {
    bounded(secs(20), || {
        let (a, b) = tcp_pair();
        let ar = a
            .begin_receive(
                Vec::with_capacity(8),
                SocketFlags::NONE,
                None,
                state(a.clone()),
            )
            .unwrap();
        drop(a);
        b.end_send(&b.begin_send(b"hey", SocketFlags::NONE, None, None).unwrap())
            .unwrap();
        let s = ar.state::<Socket>().unwrap();
        assert!(!s.is_closed());
        let (n, buf) = s.end_receive(&ar).unwrap();
        assert_eq!((n, &buf[..]), (3, &b"hey"[..]));
    });
}

// ---- End methods ----------------------------------------------------------------------

/// Kinds are strict where the types leave it to run time (`usize` results: send,
/// vectored send, send_to; `()` results: connect and a readiness operation); a clone
/// of the socket is the same socket; a socket from the same listener is not.
#[test]
fn end_methods_are_strict_about_kind_and_socket() {
    bounded(secs(20), || {
        let (a, b) = tcp_pair();
        let a_clone = a.clone();

        let v = a
            .begin_send_vectored(vec![&b"a"[..], &b"b"[..]], SocketFlags::NONE, None, None)
            .unwrap();
        assert!(matches!(a.end_send_to(&v), Err(Error::ForeignResult)));
        assert!(matches!(b.end_send(&v), Err(Error::ForeignResult)));
        assert_eq!(
            a_clone.end_send(&v).unwrap(),
            2,
            "vectored via end_send, on a clone"
        );

        let s = a.begin_send(b"c", SocketFlags::NONE, None, None).unwrap();
        assert!(matches!(a.end_send_to(&s), Err(Error::ForeignResult)));
        assert_eq!(
            a.end_send(&s).unwrap(),
            1,
            "the foreign end did not consume it"
        );

        // A readiness operation (`sends_flushed` behind a send that cannot finish:
        // nobody reads) is no connect.
        let big = vec![1u8; 16 << 20];
        let pending_send = a.begin_send(big, SocketFlags::NONE, None, None).unwrap();
        match a.sends_flushed().unwrap() {
            asyncresult_core::TryIo::WouldBlock(ready) => {
                assert!(matches!(a.end_connect(&ready), Err(Error::ForeignResult)));
                a.close();
                ready.wait_timeout(secs(10));
            }
            asyncresult_core::TryIo::Done(()) => a.close(),
        }
        assert!(matches!(a.end_send(&pending_send), Err(Error::Disposed)));

        // Two sockets accepted from one listener are different sockets.
        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        let _c1 = Socket::connect_tcp(l.local_addr().unwrap()).unwrap();
        let _c2 = Socket::connect_tcp(l.local_addr().unwrap()).unwrap();
        let s1 = l.end_accept(&l.begin_accept(None, None).unwrap()).unwrap();
        let s2 = l.end_accept(&l.begin_accept(None, None).unwrap()).unwrap();
        let r = s1
            .begin_receive(Vec::with_capacity(4), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(matches!(s2.end_receive(&r), Err(Error::ForeignResult)));
        assert!(matches!(l.end_receive(&r), Err(Error::ForeignResult)));
        s1.close();
        assert!(matches!(s1.clone().end_receive(&r), Err(Error::Disposed)));
    });
}

/// After close, end_* of an operation that had completed returns its own result, for
/// every kind; a pending one's returns Disposed; the check of origin still comes first.
#[test]
fn end_after_close_for_every_kind() {
    bounded(secs(20), || {
        let l = Socket::listen_tcp(localhost(), 4).unwrap();
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let conn = c
            .begin_connect(l.local_addr().unwrap(), None, None)
            .unwrap();
        assert!(conn.wait_timeout(secs(10)));
        let acc = l.begin_accept(None, None).unwrap();
        assert!(acc.wait_timeout(secs(10)));
        let pending_acc_l = Socket::listen_tcp(localhost(), 4).unwrap();
        let pending_acc = pending_acc_l.begin_accept(None, None).unwrap();
        l.close();
        pending_acc_l.close();
        let server = l.end_accept(&acc).expect("accepted before close");
        assert!(matches!(
            pending_acc_l.end_accept(&pending_acc),
            Err(Error::Disposed)
        ));

        let sent = c
            .begin_send(b"data", SocketFlags::NONE, None, None)
            .unwrap();
        let recv_done = {
            let r = server
                .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
                .unwrap();
            assert!(r.wait_timeout(secs(10)));
            r
        };
        let recv_pending = c
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        c.close();
        server.close();
        assert!(c.end_connect(&conn).is_ok(), "connected before close");
        assert_eq!(c.end_send(&sent).unwrap(), 4);
        assert!(matches!(c.end_receive(&recv_pending), Err(Error::Disposed)));
        let (n, buf) = server.end_receive(&recv_done).unwrap();
        assert_eq!((n, &buf[..]), (4, &b"data"[..]));
        // A foreign result is still foreign on a closed socket.
        assert!(matches!(server.end_send(&sent), Err(Error::ForeignResult)));

        let u = Socket::bind_udp(localhost()).unwrap();
        let st = u
            .begin_send_to(b"q", SocketFlags::NONE, u.local_addr().unwrap(), None, None)
            .unwrap();
        let rf = u
            .begin_receive_from(Vec::with_capacity(4), SocketFlags::NONE, None, None)
            .unwrap();
        assert!(rf.wait_timeout(secs(10)));
        let rf2 = u
            .begin_receive_from(Vec::with_capacity(4), SocketFlags::NONE, None, None)
            .unwrap();
        u.close();
        assert_eq!(u.end_send_to(&st).unwrap(), 1);
        assert_eq!(u.end_receive_from(&rf).unwrap().0, 1);
        assert!(matches!(u.end_receive_from(&rf2), Err(Error::Disposed)));
    });
}

// ---- SocketException.ErrorCode ----------------------------------------------------------

/// A TCP port that refuses connects (held, bound but not listening, for the life of
/// the test process).
fn closed_port() -> SocketAddr {
    common::refusing_port(localhost())
}

/// The errno values a Linux .NET SocketException.ErrorCode carries, delivered through
/// the callback and end_*, with their Display and io::Error conversions.
#[test]
fn socket_errors_carry_linux_errno_values() {
    bounded(secs(20), || {
        // ECONNREFUSED (111), through BeginConnect's callback.
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let (tx, rx) = mpsc::channel();
        let s2 = s.clone();
        s.begin_connect(
            closed_port(),
            callback(move |ar: AsyncResult<()>| tx.send(s2.end_connect(&ar)).unwrap()),
            None,
        )
        .unwrap();
        let e = rx.recv_timeout(secs(10)).unwrap().unwrap_err();
        assert_eq!(e.error_code(), Some(111));
        assert!(e.to_string().contains("refused"), "{e}");
        assert_eq!(
            std::io::Error::from(e).kind(),
            std::io::ErrorKind::ConnectionRefused
        );

        // ECONNRESET (104) on a receive after the peer reset.
        let (ours, theirs) = tcp_to_std();
        let r = ours
            .begin_receive(Vec::with_capacity(8), SocketFlags::NONE, None, None)
            .unwrap();
        reset(theirs);
        let e = ours.end_receive(&r).unwrap_err();
        assert_eq!(e.error_code(), Some(104), "{e}");
        assert_eq!(
            std::io::Error::from(e).kind(),
            std::io::ErrorKind::ConnectionReset
        );

        // EPIPE (32) on a send after our own shutdown(Write).
        let (ours, _theirs) = tcp_to_std();
        ours.shutdown(Shutdown::Write).unwrap();
        let e = ours
            .end_send(
                &ours
                    .begin_send(b"x", SocketFlags::NONE, None, None)
                    .unwrap(),
            )
            .unwrap_err();
        assert_eq!(e.error_code(), Some(32), "{e}");
        assert_eq!(
            std::io::Error::from(e).kind(),
            std::io::ErrorKind::BrokenPipe
        );

        // EMSGSIZE (90) for a datagram over the limit.
        let u = Socket::bind_udp(localhost()).unwrap();
        let e = u
            .end_send_to(
                &u.begin_send_to(
                    vec![0u8; 70_000],
                    SocketFlags::NONE,
                    u.local_addr().unwrap(),
                    None,
                    None,
                )
                .unwrap(),
            )
            .unwrap_err();
        assert_eq!(e.error_code(), Some(90), "{e}");

        // ENOTCONN (107) on a receive of an unconnected stream socket.
        let n = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let e = n
            .end_send(&n.begin_send(b"x", SocketFlags::NONE, None, None).unwrap())
            .unwrap_err();
        assert!(matches!(e.error_code(), Some(107) | Some(32)), "{e}");

        // Non-socket errors carry no code and say what they are.
        for e in [
            Error::Disposed,
            Error::AlreadyEnded,
            Error::ForeignResult,
            Error::Aborted,
        ] {
            assert_eq!(e.error_code(), None);
            assert!(!e.to_string().is_empty());
        }
    });
}

// ---- callback threading ---------------------------------------------------------------

/// One socket's sends, each with a callback: callbacks run exactly once each. Records
/// the order they ran in (the docs promise none between operations).
#[test]
fn callbacks_of_many_sends_on_one_socket_each_run_once() {
    bounded(secs(30), || {
        const N: usize = 2000;
        let (a, mut theirs) = tcp_to_std();
        let reader = thread::spawn(move || {
            let mut all = Vec::new();
            theirs.read_to_end(&mut all).unwrap();
            all
        });
        let order = Arc::new(Mutex::new(Vec::with_capacity(N)));
        let (tx, rx) = mpsc::channel();
        for i in 0..N {
            let order = order.clone();
            let tx = tx.clone();
            let s = a.clone();
            a.begin_send(
                vec![(i % 251) as u8; 1 + i % 3000],
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<usize>| {
                    s.end_send(&ar).unwrap();
                    order.lock().unwrap().push(i);
                    tx.send(()).unwrap();
                }),
                None,
            )
            .unwrap();
        }
        for _ in 0..N {
            rx.recv_timeout(secs(20)).expect("a callback never ran");
        }
        a.close();
        drop(a);
        let all = reader.join().unwrap();
        let mut expected = Vec::new();
        for i in 0..N {
            expected.extend(std::iter::repeat_n((i % 251) as u8, 1 + i % 3000));
        }
        assert!(all == expected, "stream content");
        let order = order.lock().unwrap().clone();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..N).collect::<Vec<_>>(), "each callback once");
        let inversions = order.windows(2).filter(|w| w[0] > w[1]).count();
        eprintln!("callback order inversions: {inversions} of {N}");
    });
}

/// Thousands of outstanding operations with callbacks across many sockets, completed
/// at once by closing (or by data): every callback runs once, nothing hangs.
#[test]
fn thousands_of_outstanding_callbacks_complete() {
    bounded(secs(60), || {
        const PAIRS: usize = 200;
        const PER: usize = 20;
        let ran = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let mut pairs = Vec::new();
        for p in 0..PAIRS {
            let (a, b) = tcp_pair();
            for _ in 0..PER {
                let s = a.clone();
                let ran = ran.clone();
                let tx = tx.clone();
                a.begin_receive(
                    Vec::with_capacity(1),
                    SocketFlags::NONE,
                    callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                        ran.fetch_add(1, Ordering::Relaxed);
                        tx.send((p, s.end_receive(&ar).map(|(n, _)| n))).unwrap();
                    }),
                    None,
                )
                .unwrap();
            }
            pairs.push((a, b));
        }
        // Half the pairs get their bytes, the other half are closed.
        for (p, (a, b)) in pairs.iter().enumerate() {
            if p % 2 == 0 {
                b.begin_send(vec![9u8; PER], SocketFlags::NONE, None, None)
                    .unwrap();
            } else {
                a.close();
            }
        }
        for _ in 0..PAIRS * PER {
            let (p, r) = rx.recv_timeout(secs(30)).expect("a callback never ran");
            if p % 2 == 0 {
                assert_eq!(r.unwrap(), 1);
            } else {
                assert!(matches!(r, Err(Error::Disposed)));
            }
        }
        assert_eq!(ran.load(Ordering::Relaxed), PAIRS * PER);
    });
}

// ---- connect retried on the same socket ------------------------------------------------

/// Reads `s` to its end: the bytes, or the error that came instead of the end.
fn read_to_end(s: &Socket) -> Result<Vec<u8>, (Vec<u8>, Error)> {
    let mut got = Vec::new();
    loop {
        let r = s.end_receive(
            &s.begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
                .unwrap(),
        );
        match r {
            Ok((0, _)) => return Ok(got),
            Ok((_, b)) => got.extend_from_slice(&b),
            Err(e) => return Err((got, e)),
        }
    }
}

/// A connect refused, then retried on the same socket (as a blocking connect allows on
/// Linux) to a server that listens: the retry connects at once, and the new
/// connection's clean end of stream is a clean 0, not the first handshake's refusal.
/// With `take_refusal_by_read`, a receive pending during the refused handshake takes
/// the refusal and a second one the end of stream first.
fn connect_retried_after_refusal(take_refusal_by_read: bool) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    let r = take_refusal_by_read.then(|| {
        s.begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap()
    });
    let refused = s.end_connect(&s.begin_connect(closed_port(), None, None).unwrap());
    assert_eq!(refused.unwrap_err().error_code(), Some(libc::ECONNREFUSED));
    if let Some(r) = r {
        let _ = s.end_receive(&r);
        let _ = read_to_end(&s);
    }

    let l = TcpListener::bind(localhost()).unwrap();
    s.connect(l.local_addr().unwrap())
        .expect("the retry connects at once");
    let (mut peer, _) = l.accept().unwrap();
    peer.write_all(b"hi").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    match read_to_end(&s) {
        Ok(got) => assert_eq!(got, b"hi"),
        Err((got, e)) => panic!("after {got:?}: the clean end of stream came as {e}"),
    }
}

#[test]
fn a_connect_retried_after_a_refusal_ends_its_stream_cleanly() {
    bounded(secs(20), || connect_retried_after_refusal(false));
}

#[test]
fn a_connect_retried_after_a_refusal_a_read_took_ends_its_stream_cleanly() {
    bounded(secs(20), || connect_retried_after_refusal(true));
}

/// After a refused connect and a successful retry, a reset that a send meets first is
/// still reported by the next read (nothing of the first handshake stands in its way).
#[test]
fn a_reset_on_a_retried_connection_is_reported_by_the_next_read() {
    bounded(secs(20), || {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let r = s
            .begin_receive(Vec::with_capacity(16), SocketFlags::NONE, None, None)
            .unwrap();
        let _ = s.end_connect(&s.begin_connect(closed_port(), None, None).unwrap());
        let _ = s.end_receive(&r);
        let _ = read_to_end(&s); // end of stream reported for the failed handshake
        let l = TcpListener::bind(localhost()).unwrap();
        s.connect(l.local_addr().unwrap())
            .expect("the retry connects");
        let (peer, _) = l.accept().unwrap();
        reset(peer);
        let e = s
            .end_send(&s.begin_send(b"x", SocketFlags::NONE, None, None).unwrap())
            .unwrap_err();
        assert_eq!(e.error_code(), Some(libc::ECONNRESET), "{e}");
        match read_to_end(&s) {
            Err((_, e)) => assert_eq!(e.error_code(), Some(libc::ECONNRESET), "{e}"),
            Ok(got) => panic!("the reset read as a clean end of stream after {got:?}"),
        }
    });
}

// ---- the CompletedSynchronously idiom -------------------------------------------------

/// .NET's idiom against stack dives: the callback returns at once when
/// `CompletedSynchronously` (the caller's loop ends those), and only handles the
/// asynchronous completions, which restart the loop. Every byte is read once, by
/// exactly one of the two paths, and the loop ends at 0.
#[test]
fn the_completed_synchronously_idiom_reads_every_byte_once() {
    struct Reader {
        s: Socket,
        got: Mutex<Vec<u8>>,
        done: mpsc::Sender<()>,
        sync_seen: AtomicUsize,
        async_seen: AtomicUsize,
    }
    /// Handles one completion; `false` at end of stream.
    fn process(r: &Reader, ar: &AsyncResult<(usize, Vec<u8>)>) -> bool {
        let (n, buf) = r.s.end_receive(ar).expect("receive");
        if n == 0 {
            r.done.send(()).unwrap();
            return false;
        }
        r.got.lock().unwrap().extend_from_slice(&buf);
        true
    }
    /// The caller's loop: begin until an operation does not complete synchronously.
    fn receive_loop(r: Arc<Reader>) {
        loop {
            let st: AsyncState = r.clone();
            let ar =
                r.s.begin_receive(
                    Vec::with_capacity(100),
                    SocketFlags::NONE,
                    callback(on_receive),
                    Some(st),
                )
                .unwrap();
            if !ar.completed_synchronously() {
                return;
            }
            r.sync_seen.fetch_add(1, Ordering::Relaxed);
            if !process(&r, &ar) {
                return;
            }
        }
    }
    fn on_receive(ar: AsyncResult<(usize, Vec<u8>)>) {
        if ar.completed_synchronously() {
            return;
        }
        let r: Arc<Reader> = ar.async_state().unwrap().clone().downcast().unwrap();
        r.async_seen.fetch_add(1, Ordering::Relaxed);
        if process(&r, &ar) {
            receive_loop(r);
        }
    }
    bounded(secs(30), || {
        let (ours, mut theirs) = tcp_to_std();
        let (tx, rx) = mpsc::channel();
        let r = Arc::new(Reader {
            s: ours,
            got: Mutex::new(Vec::new()),
            done: tx,
            sync_seen: AtomicUsize::new(0),
            async_seen: AtomicUsize::new(0),
        });
        // Some data before the loop starts (synchronous completions), more later.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        theirs.write_all(&data[..50_000]).unwrap();
        receive_loop(r.clone());
        for chunk in data[50_000..].chunks(7_000) {
            theirs.write_all(chunk).unwrap();
        }
        theirs.shutdown(Shutdown::Write).unwrap();
        rx.recv_timeout(secs(20)).expect("the loop reached 0");
        assert!(*r.got.lock().unwrap() == data, "every byte once, in order");
        assert!(r.sync_seen.load(Ordering::Relaxed) > 0);
        assert!(r.async_seen.load(Ordering::Relaxed) > 0);
    });
}

/// `AsyncWaitHandle.WaitOne(timeout)` times out, the program closes the socket: the
/// callback's end_* says Disposed, and the result cannot be ended again.
#[test]
fn wait_timeout_then_close_disposes_the_pending_operation() {
    bounded(secs(10), || {
        let (ours, _theirs) = tcp_to_std();
        let (tx, rx) = mpsc::channel();
        let s = ours.clone();
        let ar = ours
            .begin_receive(
                Vec::with_capacity(4),
                SocketFlags::NONE,
                callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
                    tx.send(s.end_receive(&ar).map(|x| x.0)).unwrap();
                }),
                None,
            )
            .unwrap();
        assert!(!ar.wait_timeout(Duration::from_millis(30)));
        assert!(!ar.is_completed());
        ours.close();
        let r = rx.recv_timeout(secs(5)).unwrap();
        assert!(matches!(r, Err(Error::Disposed)), "{r:?}");
        assert!(ar.wait_timeout(Duration::ZERO));
        assert!(matches!(ours.end_receive(&ar), Err(Error::AlreadyEnded)));
    });
}
