//! Sending one notification: signed afresh for each attempt, retried with exponential
//! backoff on network errors, timeouts, 429 and 5xx, given up on any other answer.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};

use super::event::Event;
use super::signature::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign};
use crate::domain::Webhook;
use crate::storage::{self, http::HttpClient};

/// How a notification is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait before the second attempt; it doubles before each further one.
    pub first_backoff: Duration,
    /// The longest wait between two attempts, also for a server's `Retry-After`.
    pub max_backoff: Duration,
    /// How long one attempt may take, from connecting to the end of the answer.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 2 s apart and doubling (2, 4, 8, 16 s: about a minute with the
    /// timeouts), 10 s each.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after attempt `attempt` (1-based) failed, before the next one.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first_backoff.saturating_mul(1 << doublings).min(self.max_backoff)
    }
}

/// What the receiver's answer means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: received.
    Delivered,
    /// 429 or 5xx: worth another attempt.
    Retry,
    /// Anything else (4xx, a redirect not followed): final.
    Rejected,
}

impl Verdict {
    /// The verdict on an HTTP status.
    pub fn of(status: u16) -> Verdict {
        match status {
            200..=299 => Verdict::Delivered,
            429 | 500..=599 => Verdict::Retry,
            _ => Verdict::Rejected,
        }
    }
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered {
        /// Attempts it took.
        attempts: u32,
    },
    /// The receiver answered a status that is not retried.
    Rejected {
        /// Attempts made.
        attempts: u32,
        /// The final status.
        status: u16,
    },
    /// Every attempt failed with a network error, a timeout, 429 or 5xx.
    Failed {
        /// Attempts made.
        attempts: u32,
        /// What went wrong last, without the URL.
        last: String,
    },
    /// The URL policy refused the endpoint (or a redirect) when connecting.
    Refused {
        /// Why.
        why: String,
    },
}

impl Outcome {
    /// The metrics label of the outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Failed { .. } => "failed",
            Outcome::Refused { .. } => "refused",
        }
    }
}

/// Sends `event` to `webhook` until it is delivered, rejected, refused, or the attempts
/// run out. Safe to drop at any await point (nothing is left behind but a request the
/// receiver may have seen, which the delivery id lets it recognise).
pub async fn deliver(client: &HttpClient, webhook: &Webhook, event: &Event, policy: &RetryPolicy) -> Outcome {
    let body = event.to_json();
    let mut attempt = 1;
    loop {
        let headers = headers(webhook, event, &body);
        let sent = client.post_once(&webhook.url, headers, body.clone(), policy.attempt_timeout).await;
        let (last, asked_wait) = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                match Verdict::of(status) {
                    Verdict::Delivered => return Outcome::Delivered { attempts: attempt },
                    Verdict::Rejected => return Outcome::Rejected { attempts: attempt, status },
                    Verdict::Retry => (format!("the receiver answered {status}"), retry_after(&response)),
                }
            }
            Err(storage::Error::Refused(refused)) => return Outcome::Refused { why: refused.to_string() },
            Err(storage::Error::Unreachable { detail, .. }) => (detail, None),
            Err(other) => (other.to_string(), None),
        };
        if attempt >= policy.attempts {
            return Outcome::Failed { attempts: attempt, last };
        }
        let wait = asked_wait.map_or_else(|| policy.backoff(attempt), |asked| asked.min(policy.max_backoff));
        tracing::debug!(delivery = %event.id, url = %webhook.shown_url(), attempt, error = %last, ?wait, "retrying a webhook delivery");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

// The headers of one attempt, signed now.
fn headers(webhook: &Webhook, event: &Event, body: &[u8]) -> HeaderMap {
    let signature = sign(&webhook.secret, chrono::Utc::now().timestamp(), body);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(EVENT_HEADER, HeaderValue::from_static(event.event_type));
    // A UUID and `t=<digits>,v1=<hex>` are always valid header values.
    if let Ok(value) = HeaderValue::from_str(&event.id) {
        headers.insert(DELIVERY_HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(&signature) {
        headers.insert(SIGNATURE_HEADER, value);
    }
    headers
}

// The wait a 429 or 503 asks for in `Retry-After` (whole seconds), if any.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let waits: Vec<u64> = (1..=6).map(|attempt| policy.backoff(attempt).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30]);
        // Between the 5 attempts: 30 s of waiting, about a minute with the timeouts.
        let total: Duration = (1..policy.attempts).map(|attempt| policy.backoff(attempt)).sum();
        assert_eq!(total, Duration::from_secs(30));
        assert_eq!(policy.backoff(u32::MAX), policy.max_backoff);
        let fast = RetryPolicy { first_backoff: Duration::from_millis(10), ..policy };
        assert_eq!(fast.backoff(3), Duration::from_millis(40));
    }

    #[test]
    fn verdicts() {
        let check = |status: u16, expected: Verdict| assert_eq!(Verdict::of(status), expected, "{status}");
        for status in [200, 201, 202, 204, 299] {
            check(status, Verdict::Delivered);
        }
        for status in [429, 500, 502, 503, 504, 599] {
            check(status, Verdict::Retry);
        }
        for status in [301, 304, 400, 401, 403, 404, 408, 410, 413, 422] {
            check(status, Verdict::Rejected);
        }
    }
}
