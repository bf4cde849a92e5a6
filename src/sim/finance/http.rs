//! The HTTP receiver: `POST /vouchers` with a JSON document, answered with the same
//! `FinancePostingResponse` XML as the folder receiver.

use super::{Books, PostingDoc, RawLine, ReturnRow, reply_xml};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A running simulated HTTP finance receiver. Dropping it stops it too.
#[derive(Debug)]
pub struct SimFinanceHttp {
    /// `http://127.0.0.1:PORT/vouchers`.
    pub url: String,
    books: Books,
    served: crate::sim::Served,
}

impl SimFinanceHttp {
    /// Makes the receiver answer 503 (`true`) or work again (`false`); the same switch as
    /// [`Books::set_down`].
    pub fn set_down(&self, down: bool) {
        self.books.set_down(down);
    }

    /// Stops the server and waits for it (at most 5 seconds).
    pub async fn shutdown(self) {
        self.served.shutdown().await;
    }
}

/// Starts the receiver on `127.0.0.1` on a free port.
///
/// `POST /vouchers` with `{"file_name": "...", "vouchers": [Voucher, ...]}` (the gateway's
/// `Voucher` as serde JSON: amounts as strings, `side` `Debit`/`Credit`) and an
/// `Idempotency-Key` header:
/// - 200 with the `FinancePostingResponse` XML (one `RETURN` per voucher, checked as in
///   [`super::process_request`]; header balances and line count are not in the JSON);
/// - the same key again with the same body: the stored answer again, nothing booked again;
///   the same key with a different body: 422;
/// - 400 without the header or for a body that is not such a document;
/// - 503 while [down](Books::set_down) (nothing stored).
///
/// Two requests with the same new key at the very same moment may both be processed; the
/// voucher-number duplicate check still books each voucher once.
pub async fn serve_http(books: Books) -> std::io::Result<SimFinanceHttp> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/vouchers", post(receive))
        .with_state(books.clone());
    let served = crate::sim::Served::spawn(listener, app);
    Ok(SimFinanceHttp {
        url: format!("http://{addr}/vouchers"),
        books,
        served,
    })
}

#[derive(Deserialize)]
struct JsonDocument {
    file_name: String,
    vouchers: Vec<JsonVoucher>,
}

#[derive(Deserialize)]
struct JsonVoucher {
    number: String,
    #[serde(default)]
    header_text: String,
    #[serde(default)]
    posting_date: String,
    #[serde(default)]
    value_date: String,
    lines: Vec<JsonLine>,
}

#[derive(Deserialize)]
struct JsonLine {
    #[serde(default)]
    line_no: u32,
    side: String,
    amount: String,
    gl_account: String,
    cost_centre: String,
    #[serde(default)]
    text: String,
}

impl JsonVoucher {
    fn to_doc(&self) -> PostingDoc {
        PostingDoc {
            number: self.number.clone(),
            header_text: self.header_text.clone(),
            posting_date: self.posting_date.clone(),
            number_of_lines: None,
            debit_balance: None,
            credit_balance: None,
            lines: self
                .lines
                .iter()
                .map(|l| RawLine {
                    side: match l.side.as_str() {
                        "Debit" => "D".into(),
                        "Credit" => "K".into(),
                        other => other.to_owned(),
                    },
                    amount: l.amount.clone(),
                    value_date: self.value_date.clone(),
                    text: l.text.clone(),
                    gl_account: l.gl_account.clone(),
                    cost_centre: l.cost_centre.clone(),
                    ref_key: l.line_no.to_string(),
                })
                .collect(),
        }
    }
}

fn xml_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn receive(State(books): State<Books>, headers: HeaderMap, body: Bytes) -> Response {
    if books.is_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "finance system unavailable",
        )
            .into_response();
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
    else {
        return (StatusCode::BAD_REQUEST, "Idempotency-Key header required").into_response();
    };
    let hash: [u8; 32] = Sha256::digest(&body).into();
    if let Some((stored_hash, status, answer)) = books.lock().answers.get(&key).cloned() {
        if stored_hash != hash {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Idempotency-Key reused with a different body",
            )
                .into_response();
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        return xml_response(status, answer);
    }
    let doc: JsonDocument = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            let reply = reply_xml(
                "",
                &[ReturnRow {
                    message_type: 'E',
                    number: None,
                    message: format!("Malformed file: {e}"),
                }],
            );
            return xml_response(StatusCode::BAD_REQUEST, reply);
        }
    };
    let rows: Vec<ReturnRow> = doc
        .vouchers
        .iter()
        .map(|v| books.book(&doc.file_name, &v.to_doc()))
        .collect();
    let reply = reply_xml(&doc.file_name, &rows);
    books.lock().answers.insert(key, (hash, 200, reply.clone()));
    xml_response(StatusCode::OK, reply)
}
