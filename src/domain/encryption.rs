//! Backup encryption: the age recipients (X25519 public keys) a database's backups are
//! encrypted to.

/// A validated age X25519 recipient, `age1...` (Bech32), as `age-keygen` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgeRecipient(String);

impl AgeRecipient {
    /// Checks a recipient; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if !text.starts_with("age1") {
            return Err("must be an age X25519 recipient (a public key starting with age1, from age-keygen)"
                .to_owned());
        }
        text.parse::<age::x25519::Recipient>()
            .map_err(|problem| format!("is not a valid age X25519 recipient: {problem}"))?;
        Ok(AgeRecipient(text.to_owned()))
    }

    /// The recipient as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The recipient as the age crate's type.
    pub fn to_age(&self) -> age::x25519::Recipient {
        // Checked by `parse`: every AgeRecipient parses.
        self.0.parse().unwrap_or_else(|_| unreachable!("an AgeRecipient is checked when made"))
    }
}

impl TryFrom<String> for AgeRecipient {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        AgeRecipient::parse(&text)
    }
}

impl From<AgeRecipient> for String {
    fn from(recipient: AgeRecipient) -> String {
        recipient.0
    }
}

impl std::fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients() {
        let public = age::x25519::Identity::generate().to_public().to_string();
        assert_eq!(AgeRecipient::parse(&format!(" {public}\n")).unwrap().as_str(), public);
        for bad in ["", "ssh-ed25519 AAAA", "age1notbech32", &public[..public.len() - 1]] {
            assert!(AgeRecipient::parse(bad).is_err(), "{bad}");
        }
    }
}
