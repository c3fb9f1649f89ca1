//! scratch
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const N: usize = 2_000;

async fn ours() {
    let l = asyncresult_tokio::TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = l.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..N { s.read_exact(&mut buf).await.unwrap(); s.write_all(&buf).await.unwrap(); }
    });
    let mut c = asyncresult_tokio::TcpStream::connect(addr).await.unwrap();
    c.set_nodelay(true).unwrap();
    let mut buf = [0u8; 64];
    let t = Instant::now();
    for _ in 0..N { c.write_all(&buf.clone()).await.unwrap(); c.read_exact(&mut buf).await.unwrap(); }
    let e = t.elapsed();
    srv.await.unwrap();
    println!("ours:   {:.2} us/rt", e.as_secs_f64() * 1e6 / N as f64);
}

async fn native() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..N { s.read_exact(&mut buf).await.unwrap(); s.write_all(&buf).await.unwrap(); }
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.set_nodelay(true).unwrap();
    let mut buf = [0u8; 64];
    let t = Instant::now();
    for _ in 0..N { c.write_all(&buf.clone()).await.unwrap(); c.read_exact(&mut buf).await.unwrap(); }
    let e = t.elapsed();
    srv.await.unwrap();
    println!("native: {:.2} us/rt", e.as_secs_f64() * 1e6 / N as f64);
}

fn main() {
    if let Some(a) = std::env::args().nth(1) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        if a == "ours" { rt.block_on(ours()) } else { rt.block_on(native()) }
        return;
    }
    for _ in 0..2 {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(native());
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(ours());
        tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(native());
        tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(ours());
    }
}
