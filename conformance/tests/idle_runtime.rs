//! A tokio runtime that exists but is not running (a current-thread runtime that
//! nobody is blocking on) holds the engine as an attached driver. It must not make
//! every other socket of the process wait for the engine's monitor: after one look,
//! the engine's workers take polling back until a driver drains again. Alone in its
//! test binary (so in its own process), as it counts the engine's monitor drains.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use asyncresult_callback::prelude::*;
use asyncresult_conformance::{bounded, loopback};
use asyncresult_core::driver::engine_stats;

/// Round trips through the callback adapter while the runtime idles.
const ROUNDS: usize = 200;

#[test]
fn an_idle_runtime_leaves_other_sockets_served_by_the_workers() {
    bounded(Duration::from_secs(60), "hung", || {
        // A current-thread runtime whose driver attached (a wait began on it), then
        // left idle: nothing drives it any more.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = asyncresult_tokio::TcpListener::bind(loopback())
                .await
                .unwrap();
            let waited = l.accept_timeout(Duration::from_millis(1)).await;
            assert!(matches!(waited, Err(Error::Aborted)));
        });
        assert_eq!(engine_stats().unwrap().drivers, 1);

        // Callback-adapter sockets: every receive is begun before its data comes, so
        // each hop waits for an event that somebody must serve.
        let listener = Socket::listen_tcp(loopback(), 4).unwrap();
        let client = Socket::connect_tcp(listener.local_addr().unwrap()).unwrap();
        let server = listener
            .end_accept(&listener.begin_accept(None, None).unwrap())
            .unwrap();
        let before = engine_stats().unwrap().monitor_drains;
        let mut halfway = before;
        for round in 0..ROUNDS {
            if round == ROUNDS / 2 {
                halfway = engine_stats().unwrap().monitor_drains;
            }
            let byte = [round as u8];
            for (from, to) in [(&client, &server), (&server, &client)] {
                let receive = to
                    .begin_receive(Vec::with_capacity(1), SocketFlags::NONE, None, None)
                    .unwrap();
                from.end_send(
                    &from
                        .begin_send(byte.to_vec(), SocketFlags::NONE, None, None)
                        .unwrap(),
                )
                .unwrap();
                let (n, got) = to.end_receive(&receive).unwrap();
                assert_eq!((n, got), (1, byte.to_vec()));
            }
        }
        let end = engine_stats().unwrap().monitor_drains;
        // The first few events wait for the monitor's looks (8 in a row, 2 ms each; a
        // look that finds nothing, as when this thread was descheduled between hops,
        // starts the count again); then the workers serve. (Before, each of the 400
        // hops waited for it.) So the second half of the hops waits for it no more.
        let (first, second) = (halfway - before, end - halfway);
        assert!(
            second <= 2 && first <= ROUNDS as u64,
            "events that waited for the monitor: {first} in the first {ROUNDS} hops, \
             {second} in the last {ROUNDS}"
        );

        // The runtime runs again: its driver drains, and takes polling back.
        rt.block_on(async {
            let l = asyncresult_tokio::TcpListener::bind(loopback())
                .await
                .unwrap();
            let c = asyncresult_tokio::TcpStream::connect(l.local_addr().unwrap());
            let (c, accepted) = tokio::join!(c, l.accept());
            let (c, (s, _)) = (c.unwrap(), accepted.unwrap());
            let receive = s.receive(Vec::with_capacity(4));
            let (sent, received) = tokio::join!(c.send(&b"ping"[..]), receive);
            assert_eq!(sent.unwrap(), 4);
            assert_eq!(received.unwrap().0, 4);
        });
    });
}
