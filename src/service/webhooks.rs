//! A database's completion webhook as requests set it: the endpoint checked against
//! the URL policy at registration (the sender's client checks again at every connect
//! and redirect), and updates that change the endpoint, the secret, or remove both.

use super::{Cellar, Error, WebhookPatch};
use crate::domain::{Invalid, Webhook};

/// The request field a webhook's endpoint is reported under.
const URL_FIELD: &str = "database.webhook.url";

impl Cellar {
    /// Checks a webhook's endpoint against the URL policy: PERMISSION_DENIED with reason
    /// `URL_NOT_ALLOWED` for a host the policy refuses.
    pub(super) async fn check_webhook(&self, webhook: &Webhook) -> Result<(), Error> {
        match self.allowed_url(URL_FIELD, &webhook.url).await? {
            Ok(_) => Ok(()),
            Err(problem) => Err(Invalid::field(URL_FIELD, problem).into()),
        }
    }

    /// The webhook after `patch`, its endpoint checked when it is new.
    pub(super) async fn patched_webhook(
        &self,
        current: Option<Webhook>,
        patch: WebhookPatch,
    ) -> Result<Option<Webhook>, Error> {
        let patched = match (patch.url, patch.secret, current) {
            (Some(None), _, _) => return Ok(None),
            (None, None, current) => return Ok(current),
            (None, Some(secret), Some(current)) => return Ok(Some(Webhook { secret, ..current })),
            (None, Some(_), None) => {
                return Err(Invalid::field(URL_FIELD, "is required: the database has no webhook yet").into());
            }
            (Some(Some(url)), Some(secret), _) => Webhook { url, secret },
            (Some(Some(url)), None, Some(current)) => Webhook { url, secret: current.secret },
            (Some(Some(_)), None, None) => {
                let problem = "is required: the key that signs each notification";
                return Err(Invalid::field("database.webhook.secret", problem).into());
            }
        };
        self.check_webhook(&patched).await?;
        Ok(Some(patched))
    }
}
