//! Finance transports (folder, SFTP against a real OpenSSH server, HTTP) and the simulated
//! finance system's checks.

use crate::support::sshd;

use progression_gateway::sim::finance::{Books, process_folder, process_request, serve_http};
use progression_gateway::sinks::finance::transport::{
    Delivery, HttpConfig, SftpConfig, Transport, TransportConfig, TransportError,
};
use rust_decimal::Decimal;
use std::path::Path;
use std::str::FromStr;

const NS: &str = "http://kmd.dk/fir/posting/external";

/// One line for [`request`]: (D|K, amount, gl account, cost centre, text).
type Line<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A hand-written `FinancePostingRequest` with one POSTING_DOCUMENT per voucher; header
/// balances and line count computed from the lines.
fn request(file_name: &str, vouchers: &[(&str, Vec<Line>)]) -> Vec<u8> {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<FinancePostingRequest xmlns=\"{NS}\">\
         <CONTROL_FIELDS><SENDER>PG</SENDER><RECEIVER>KMD</RECEIVER><FILE_NAME>{file_name}</FILE_NAME>\
         <SEND_DATE>2026-11-23</SEND_DATE><SEND_TIME>02:30:00</SEND_TIME></CONTROL_FIELDS>"
    );
    for (number, lines) in vouchers {
        let debit: Decimal = lines.iter().filter(|l| l.0 == "D").map(|l| dec(l.1)).sum();
        let credit: Decimal = lines.iter().filter(|l| l.0 == "K").map(|l| dec(l.1)).sum();
        s.push_str(&format!(
            "<POSTING_DOCUMENT><HEADER><NUMBER_OF_LINES>{}</NUMBER_OF_LINES>\
             <DEBIT_BALANCE>{debit:.2}</DEBIT_BALANCE><CREDIT_BALANCE>{credit:.2}</CREDIT_BALANCE>\
             <MUNICIPALITY>751</MUNICIPALITY><COMP_CODE>0751</COMP_CODE><DOC_DATE>2026-11-23</DOC_DATE>\
             <PSTNG_DATE>2026-11-23</PSTNG_DATE><RECEIV_DOC>{number}</RECEIV_DOC>\
             <HEADER_TXT>Team income</HEADER_TXT></HEADER><LINES>",
            lines.len()
        ));
        for (i, (side, amount, gl, cc, text)) in lines.iter().enumerate() {
            s.push_str(&format!(
                "<LINE><DEB_CRED_IND>{side}</DEB_CRED_IND><AMT_DOCCUR>{amount}</AMT_DOCCUR>\
                 <VALUE_DATE>2026-11-23</VALUE_DATE><ITEM_TEXT>{text}</ITEM_TEXT>\
                 <GL_ACCOUNT>{gl}</GL_ACCOUNT><COSTCENTER>{cc}</COSTCENTER>\
                 <REF_KEY_3>{}</REF_KEY_3></LINE>",
                i + 1
            ));
        }
        s.push_str("</LINES></POSTING_DOCUMENT>");
    }
    s.push_str("</FinancePostingRequest>");
    s.into_bytes()
}

fn balanced(amount: &str) -> Vec<Line<'static>> {
    let neg: &'static str = Box::leak(format!("-{amount}").into_boxed_str());
    let amount: &'static str = Box::leak(amount.to_owned().into_boxed_str());
    vec![
        ("D", amount, "53026101", "4711", "Team Nord income"),
        ("K", neg, "53026199", "9000", "Purchaser"),
    ]
}

/// The RETURN rows of a reply: (type, number, message).
fn returns(reply: &[u8]) -> Vec<(String, Option<String>, String)> {
    let text = String::from_utf8(reply.to_vec()).unwrap();
    assert!(
        text.contains(&format!("<FinancePostingResponse xmlns=\"{NS}\">")),
        "{text}"
    );
    let tag = |chunk: &str, name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let start = chunk.find(&open)? + open.len();
        let end = chunk[start..].find(&format!("</{name}>"))? + start;
        Some(chunk[start..end].to_owned())
    };
    text.split("<RETURN>")
        .skip(1)
        .map(|c| {
            (
                tag(c, "MESSAGE_TYPE").unwrap(),
                tag(c, "RECEIV_DOC"),
                tag(c, "MESSAGE").unwrap(),
            )
        })
        .collect()
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// --- the simulated finance system --------------------------------------------------------------

#[test]
fn sim_books_a_balanced_voucher() {
    let books = Books::new();
    let reply = process_request(
        &books,
        &request("f1.xml", &[("PG26000001", balanced("1234.50"))]),
    );
    assert_eq!(
        returns(&reply),
        vec![("I".into(), Some("PG26000001".into()), "Posted".into())]
    );
    assert!(String::from_utf8_lossy(&reply).contains("<FILE_NAME>f1.xml</FILE_NAME>"));
    assert_eq!(books.voucher_count(), 1);
    let v = books.voucher("PG26000001").unwrap();
    assert_eq!(v.year, "26");
    assert_eq!(v.lines.len(), 2);
    assert_eq!(books.total_for_cost_centre("4711"), dec("1234.50"));
    assert_eq!(books.total_for_gl_account("53026199"), dec("-1234.50"));
    assert_eq!(
        books
            .sum_by_cost_centre()
            .values()
            .copied()
            .sum::<Decimal>(),
        Decimal::ZERO
    );
}

#[test]
fn sim_refuses_bad_vouchers_with_reasons() {
    let books = Books::new();
    let long_text = "x".repeat(51);
    let cases: Vec<(&str, Vec<Line>, &str)> = vec![
        (
            "PG26000002",
            vec![
                ("D", "100.00", "53026101", "4711", "x"),
                ("K", "-99.99", "53026199", "9000", "y"),
            ],
            "does not balance",
        ),
        (
            "PG26000003",
            vec![
                ("D", "-100.00", "53026101", "4711", "x"),
                ("K", "100.00", "53026199", "9000", "y"),
            ],
            "must be positive",
        ),
        (
            "PG26000004",
            vec![
                ("D", "100.00", "5302610", "4711", "x"),
                ("K", "-100.00", "53026199", "9000", "y"),
            ],
            "GL_ACCOUNT `5302610` must be 8 digits",
        ),
        (
            "PG26000005",
            vec![
                ("D", "100.00", "53026101", "4711", &long_text),
                ("K", "-100.00", "53026199", "9000", "y"),
            ],
            "at most 50",
        ),
        ("PG2600000006", balanced("1.00"), "4-10 characters"),
        (
            "PG26000007",
            vec![
                ("D", "100.0", "53026101", "4711", "x"),
                ("K", "-100.0", "53026199", "9000", "y"),
            ],
            "2 decimals",
        ),
    ];
    for (number, lines, reason) in cases {
        let reply = process_request(&books, &request("bad.xml", &[(number, lines)]));
        let rows = returns(&reply);
        assert_eq!(rows.len(), 1, "{number}");
        assert_eq!(rows[0].0, "E", "{number}: {}", rows[0].2);
        assert!(rows[0].2.contains(reason), "{number}: {}", rows[0].2);
    }
    // Header balances that disagree with the lines.
    let xml = String::from_utf8(request("h.xml", &[("PG26000008", balanced("10.00"))]))
        .unwrap()
        .replace("<DEBIT_BALANCE>10.00<", "<DEBIT_BALANCE>11.00<");
    let rows = returns(&process_request(&books, xml.as_bytes()));
    assert!(
        rows[0].0 == "E" && rows[0].2.contains("DEBIT_BALANCE"),
        "{rows:?}"
    );
    let xml = String::from_utf8(request("h.xml", &[("PG26000009", balanced("10.00"))]))
        .unwrap()
        .replace("<NUMBER_OF_LINES>2<", "<NUMBER_OF_LINES>3<");
    let rows = returns(&process_request(&books, xml.as_bytes()));
    assert!(
        rows[0].0 == "E" && rows[0].2.contains("NUMBER_OF_LINES"),
        "{rows:?}"
    );
    assert_eq!(books.voucher_count(), 0);
}

#[test]
fn sim_duplicate_number_is_already_received_and_years_are_separate() {
    let books = Books::new();
    let first = request("a.xml", &[("PG26000010", balanced("50.00"))]);
    assert_eq!(returns(&process_request(&books, &first))[0].0, "I");
    let again = returns(&process_request(&books, &first));
    assert_eq!(again[0].0, "E");
    assert_eq!(
        again[0].2,
        "Voucher number PG26000010 already received this year"
    );
    assert_eq!(books.voucher_count(), 1);
    assert_eq!(books.total_for_cost_centre("4711"), dec("50.00"));
    // The same sequence next year is another voucher.
    let next_year = request("b.xml", &[("PG27000010", balanced("60.00"))]);
    assert_eq!(returns(&process_request(&books, &next_year))[0].0, "I");
    assert_eq!(books.voucher_count(), 2);
    // Two vouchers in one file, one of them a duplicate: one RETURN each, in order.
    let mixed = request(
        "c.xml",
        &[
            ("PG26000010", balanced("50.00")),
            ("PG26000011", balanced("5.00")),
        ],
    );
    let rows = returns(&process_request(&books, &mixed));
    assert_eq!(rows[0].0, "E");
    assert_eq!(
        rows[1],
        ("I".into(), Some("PG26000011".into()), "Posted".into())
    );
}

#[test]
fn sim_malformed_file_gets_one_error_without_number() {
    let books = Books::new();
    for bad in [
        &b"<FinancePostingRequest xmlns=\"http://kmd.dk/fir/posting/external\"><CONTROL_FIELDS>"[..],
        b"<FinancePostingRequest><CONTROL_FIELDS/></FinancePostingRequest>",
        b"not xml at all",
    ] {
        let rows = returns(&process_request(&books, bad));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "E");
        assert_eq!(rows[0].1, None);
        assert!(rows[0].2.starts_with("Malformed file"), "{}", rows[0].2);
    }
    assert_eq!(books.voucher_count(), 0);
}

// --- folder -------------------------------------------------------------------------------------

#[tokio::test]
async fn folder_delivers_atomically_and_round_trips_replies() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("out");
    let replies = tmp.path().join("in");
    let transport = Transport::new(&TransportConfig::Folder {
        dir: inbox.clone(),
        reply_dir: replies.clone(),
    })
    .unwrap();

    // A reader polling the folder while a large file is written never sees a partial *.xml.
    let big = request(
        "big.xml",
        &(1..=2000)
            .map(|i| {
                (
                    Box::leak(format!("PG26{i:06}").into_boxed_str()) as &str,
                    balanced("1.00"),
                )
            })
            .collect::<Vec<_>>(),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (inbox, stop, len) = (inbox.clone(), stop.clone(), big.len());
        std::thread::spawn(move || {
            let mut seen = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for name in dir_names(&inbox) {
                    if name.ends_with(".xml") && !name.starts_with('.') {
                        let got = std::fs::metadata(inbox.join(&name)).map(|m| m.len());
                        if let Ok(got) = got {
                            assert_eq!(got as usize, len, "partial {name} seen");
                            seen += 1;
                        }
                    }
                }
            }
            seen
        })
    };
    let d = transport.deliver("big.xml", &big, "k1").await.unwrap();
    assert_eq!(d, Delivery::Delivered);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    watcher.join().unwrap();
    assert_eq!(dir_names(&inbox), vec!["big.xml"]);
    assert_eq!(std::fs::read(inbox.join("big.xml")).unwrap(), big);

    // Invalid names are refused.
    for bad in ["", ".hidden.xml", "../x.xml", "a/b.xml"] {
        assert!(matches!(
            transport.deliver(bad, b"x", "k").await,
            Err(TransportError::InvalidName(_))
        ));
    }

    // The simulated receiver books, replies and moves the request.
    let books = Books::new();
    books.set_down(true);
    assert_eq!(process_folder(&books, &inbox, &replies).unwrap(), 0);
    books.set_down(false);
    assert_eq!(process_folder(&books, &inbox, &replies).unwrap(), 1);
    assert_eq!(books.voucher_count(), 2000);
    assert_eq!(dir_names(&inbox), vec!["processed"]);
    assert_eq!(dir_names(&inbox.join("processed")), vec!["big.xml"]);

    let got = transport.fetch_replies().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "big_reply.xml");
    let rows = returns(&got[0].content);
    assert_eq!(rows.len(), 2000);
    assert!(rows.iter().all(|r| r.0 == "I"));
    transport.archive_reply("big_reply.xml").await.unwrap();
    assert!(transport.fetch_replies().await.unwrap().is_empty());
    assert_eq!(dir_names(&replies.join("archive")), vec!["big_reply.xml"]);
}

// --- SFTP ---------------------------------------------------------------------------------------

fn sftp_config(sshd: &sshd::Sshd, remote: &Path, replies: &Path) -> SftpConfig {
    SftpConfig {
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: sshd.user.clone(),
        private_key_file: sshd.client_key.clone(),
        known_hosts_file: Some(sshd.known_hosts.clone()),
        accept_unknown_host_key: false,
        remote_dir: remote.display().to_string(),
        reply_dir: replies.display().to_string(),
        timeout_secs: 20,
    }
}

#[tokio::test]
async fn sftp_delivers_fetches_and_archives_against_real_sshd() {
    let mut sshd = sshd::Sshd::start();
    let remote = sshd.root.join("opus_in");
    let reply_dir = sshd.root.join("opus_out");
    std::fs::create_dir_all(&remote).unwrap();
    std::fs::create_dir_all(&reply_dir).unwrap();
    let transport = Transport::new(&TransportConfig::Sftp(sftp_config(
        &sshd, &remote, &reply_dir,
    )))
    .unwrap();

    let name = "ZFIR_KMD_Opus_Posteringer_IND_751_PG_20261123_023000.xml";
    let content = request(name, &[("PG26000100", balanced("250.00"))]);
    let d = transport.deliver(name, &content, "unused").await;
    assert_eq!(
        d.unwrap_or_else(|e| panic!("{e}\n{}", sshd.log())),
        Delivery::Delivered
    );
    assert_eq!(dir_names(&remote), vec![name.to_owned()]);
    assert_eq!(std::fs::read(remote.join(name)).unwrap(), content);
    // Delivering the same name again is refused: a file not yet collected is never replaced
    // (and no temp file is left behind).
    let again = transport
        .deliver(name, b"other", "unused")
        .await
        .unwrap_err();
    assert!(
        matches!(again, progression_gateway::sinks::finance::transport::TransportError::Exists(ref n) if n == name),
        "{again}"
    );
    assert_eq!(dir_names(&remote), vec![name.to_owned()]);
    assert_eq!(std::fs::read(remote.join(name)).unwrap(), content);

    // Opus processes the remote folder (on local disk) and writes its reply.
    let books = Books::new();
    assert_eq!(process_folder(&books, &remote, &reply_dir).unwrap(), 1);
    assert_eq!(books.voucher_count(), 1);
    std::fs::write(reply_dir.join(".half_written.xml.part"), b"<Fin").unwrap();
    std::fs::write(reply_dir.join("notes.txt"), b"ignored").unwrap();

    let got = transport.fetch_replies().await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let reply_name = "ZFIR_KMD_Opus_Posteringer_IND_751_PG_20261123_023000_reply.xml";
    assert_eq!(got[0].name, reply_name);
    assert_eq!(returns(&got[0].content)[0].0, "I");
    transport.archive_reply(reply_name).await.unwrap();
    assert!(transport.fetch_replies().await.unwrap().is_empty());
    assert_eq!(
        dir_names(&reply_dir.join("archive")),
        vec![reply_name.to_owned()]
    );

    // A wrong host key is refused, and nothing is written.
    let mut wrong = sftp_config(&sshd, &remote, &reply_dir);
    wrong.known_hosts_file = Some(sshd.wrong_known_hosts());
    let t = Transport::new(&TransportConfig::Sftp(wrong)).unwrap();
    let err = t.deliver("x.xml", b"<x/>", "k").await.unwrap_err();
    assert!(matches!(err, TransportError::HostKey(_)), "{err}");
    assert!(!err.is_retryable());
    // A known_hosts file without this host is refused too.
    let mut unknown = sftp_config(&sshd, &remote, &reply_dir);
    let empty = sshd.root.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    unknown.known_hosts_file = Some(empty);
    let err = Transport::new(&TransportConfig::Sftp(unknown))
        .unwrap()
        .deliver("x.xml", b"<x/>", "k")
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::HostKey(_)), "{err}");
    // No host key check configured at all: refused when built.
    let mut none = sftp_config(&sshd, &remote, &reply_dir);
    none.known_hosts_file = None;
    assert!(matches!(
        Transport::new(&TransportConfig::Sftp(none)),
        Err(TransportError::Config(_))
    ));
    assert_eq!(dir_names(&remote), vec!["processed"]);

    // sshd stopped: the delivery fails (retryable) and nothing is written.
    sshd.stop();
    let err = transport.deliver("y.xml", b"<y/>", "k").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(dir_names(&remote), vec!["processed"]);
}

#[tokio::test]
async fn sftp_wrong_client_key_is_an_auth_failure() {
    let sshd = sshd::Sshd::start();
    let other = sshd.root.join("stranger");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut cfg = sftp_config(&sshd, &sshd.root, &sshd.root);
    cfg.private_key_file = other;
    let err = Transport::new(&TransportConfig::Sftp(cfg))
        .unwrap()
        .deliver("x.xml", b"<x/>", "k")
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::AuthFailed(_)), "{err}");
}

#[test]
fn transport_config_deserializes_with_kind_tag() {
    let c: TransportConfig = toml::from_str(
        "kind = \"sftp\"\nhost = \"opus.kmd.dk\"\nuser = \"u751\"\nprivate_key_file = \"/etc/pg/id\"\n\
         known_hosts_file = \"/etc/pg/known_hosts\"\nremote_dir = \"in\"\nreply_dir = \"out\"\n",
    )
    .unwrap();
    match c {
        TransportConfig::Sftp(s) => {
            assert_eq!(s.port, 22);
            assert_eq!(s.timeout_secs, 60);
            assert!(!s.accept_unknown_host_key);
        }
        other => panic!("{other:?}"),
    }
    let c: TransportConfig =
        toml::from_str("kind = \"http\"\nurl = \"https://x\"\nbearer_token = \"s3cret\"\n")
            .unwrap();
    assert!(!format!("{c:?}").contains("s3cret"));
    assert!(
        toml::from_str::<TransportConfig>(
            "kind = \"folder\"\ndir = \"a\"\nreply_dir = \"b\"\nextra = 1\n"
        )
        .is_err()
    );
}

// --- HTTP ---------------------------------------------------------------------------------------

fn json_doc(file_name: &str, number: &str, amount: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "file_name": file_name,
        "vouchers": [{
            "number": number,
            "team": "nord",
            "track": "care",
            "month": "2026-11",
            "amount": amount,
            "document_date": "2026-11-23",
            "posting_date": "2026-11-23",
            "value_date": "2026-11-23",
            "header_text": "Team Nord",
            "lines": [
                {"line_no": 1, "side": "Debit", "amount": amount, "gl_account": "53026101",
                 "cost_centre": "4711", "text": "Team Nord income"},
                {"line_no": 2, "side": "Credit", "amount": format!("-{amount}"),
                 "gl_account": "53026199", "cost_centre": "9000", "text": "Purchaser"}
            ]
        }]
    }))
    .unwrap()
}

#[tokio::test]
async fn http_idempotency_key_books_once_and_503_when_down() {
    let books = Books::new();
    let sim = serve_http(books.clone()).await.unwrap();
    let transport = Transport::new(&TransportConfig::Http(HttpConfig {
        url: sim.url.clone(),
        bearer_token: None,
        timeout_secs: 10,
    }))
    .unwrap();
    let body = json_doc("night-1", "PG26000200", "300.00");

    let first = transport
        .deliver("night-1", &body, "PG26000200")
        .await
        .unwrap();
    let Delivery::Answered(first) = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        returns(&first),
        vec![("I".into(), Some("PG26000200".into()), "Posted".into())]
    );
    let second = transport
        .deliver("night-1", &body, "PG26000200")
        .await
        .unwrap();
    assert_eq!(second, Delivery::Answered(first.clone()));
    assert_eq!(books.voucher_count(), 1);
    assert_eq!(books.total_for_cost_centre("4711"), dec("300.00"));

    // A new key with the same voucher number: the finance system's duplicate check.
    let Delivery::Answered(dup) = transport
        .deliver("night-2", &body, "other-key")
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        returns(&dup)[0].2,
        "Voucher number PG26000200 already received this year"
    );
    assert_eq!(books.voucher_count(), 1);

    // Same key, different body: refused, not retryable.
    let other = json_doc("night-1", "PG26000201", "1.00");
    let err = transport
        .deliver("night-1", &other, "PG26000200")
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::Status { status: 422, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());

    // Down: 503, retryable, nothing booked or stored.
    sim.set_down(true);
    let body3 = json_doc("night-3", "PG26000202", "7.00");
    let err = transport
        .deliver("night-3", &body3, "PG26000202")
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::Status { status: 503, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
    sim.set_down(false);
    let Delivery::Answered(ok) = transport
        .deliver("night-3", &body3, "PG26000202")
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(returns(&ok)[0].0, "I");
    assert_eq!(books.voucher_count(), 2);

    // An unbalanced voucher over HTTP is refused with its reason.
    let mut v: serde_json::Value =
        serde_json::from_slice(&json_doc("n4", "PG26000203", "5.00")).unwrap();
    v["vouchers"][0]["lines"][1]["amount"] = "-4.00".into();
    let Delivery::Answered(bad) = transport
        .deliver("n4", &serde_json::to_vec(&v).unwrap(), "PG26000203")
        .await
        .unwrap()
    else {
        panic!()
    };
    let rows = returns(&bad);
    assert!(
        rows[0].0 == "E" && rows[0].2.contains("does not balance"),
        "{rows:?}"
    );

    // The server gone: a connection error, retryable.
    sim.shutdown().await;
    let err = transport.deliver("n5", &body3, "k5").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
