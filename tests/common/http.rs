//! A small HTTP/1.1 client for the API tests: one GET per connection.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

/// One GET; returns the status and the body (de-chunked).
pub fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 || b.len() < eol + 2 + size {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
}

/// The status and parsed body of `GET path`. Every JSON answer is in one
/// form, compact with keys sorted at every level (the form the README's
/// examples show): re-serialising the parsed body gives the same bytes.
pub fn json(addr: &str, path: &str) -> (u16, Value) {
    let (status, body) = get(addr, path, &[]);
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&serde_json::to_vec(&value).unwrap()),
        String::from_utf8_lossy(&body),
        "{path}: the answer is not compact with sorted keys"
    );
    (status, value)
}
