//! One email over SMTP (lettre), with the `smtp.*` settings: plain, STARTTLS or implicit TLS,
//! optional login, and a timeout on the whole exchange.

use std::time::Duration;

use dag::EmailSpec;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// The `smtp` section of the configuration.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Upgrade the connection with STARTTLS (required when set).
    pub starttls: bool,
    /// Implicit TLS from the first byte (port 465 style); wins over `starttls`.
    pub ssl: bool,
    /// The sender address (`smtp.from`, Airflow's `smtp_mail_from`).
    pub from: String,
    /// Bounds connecting, the dialogue and the whole send.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("starttls", &self.starttls)
            .field("ssl", &self.ssl)
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for SmtpSettings {
    /// Airflow's defaults: `localhost:25`, STARTTLS on, implicit TLS off, 30 s.
    fn default() -> Self {
        SmtpSettings {
            host: "localhost".to_string(),
            port: 25,
            user: None,
            password: None,
            starttls: true,
            ssl: false,
            from: "updraft@localhost".to_string(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The body of a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailBody {
    Text(String),
    Html(String),
}

/// One mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub body: MailBody,
}

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("no recipient: 'to' is empty")]
    NoRecipients,
    #[error("invalid {field} address '{address}': {message}")]
    BadAddress {
        field: &'static str,
        address: String,
        message: String,
    },
    #[error("could not build the mail: {0}")]
    Build(String),
    #[error("SMTP server {server}: {message}")]
    Send { server: String, message: String },
    /// Nothing listens at the configured address (with Airflow's default of `localhost:25`,
    /// usually because no SMTP server is configured at all): the message says what to set.
    #[error(
        "SMTP server {server}: {message}; no mail server answers there: set smtp.host and \
         smtp.port (the [smtp] section of updraft.toml, or UPDRAFT__SMTP__HOST and \
         UPDRAFT__SMTP__PORT) to your mail server"
    )]
    Unreachable { server: String, message: String },
    #[error("SMTP server {server} did not finish within {seconds}s")]
    Timeout { server: String, seconds: f64 },
}

impl Mail {
    /// From a rendered `{to, cc, subject, html | text}` spec; `to` and `cc` are an address, a
    /// comma-separated list, or a list.
    pub fn from_spec(spec: &EmailSpec, default_subject: &str) -> Mail {
        let body = match (&spec.html, &spec.text) {
            (Some(html), _) if !html.is_null() => MailBody::Html(text_of(html)),
            (_, Some(text)) if !text.is_null() => MailBody::Text(text_of(text)),
            _ => MailBody::Text(String::new()),
        };
        Mail {
            to: addresses(spec.to.as_ref()),
            cc: addresses(spec.cc.as_ref()),
            subject: spec
                .subject
                .as_ref()
                .filter(|v| !v.is_null())
                .map(text_of)
                .unwrap_or_else(|| default_subject.to_string()),
            body,
        }
    }
}

/// Addresses from a string (comma or semicolon separated) or a list of strings.
pub fn addresses(value: Option<&serde_json::Value>) -> Vec<String> {
    let split = |s: &str| {
        s.split([',', ';'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    match value {
        Some(serde_json::Value::String(s)) => split(s),
        Some(serde_json::Value::Array(items)) => {
            items.iter().flat_map(|v| split(&text_of(v))).collect()
        }
        _ => Vec::new(),
    }
}

fn text_of(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn mailbox(field: &'static str, address: &str) -> Result<Mailbox, MailError> {
    address
        .parse()
        .map_err(|e: lettre::address::AddressError| MailError::BadAddress {
            field,
            address: address.to_string(),
            message: e.to_string(),
        })
}

/// Send `mail` through the server of `settings`.
pub async fn send(settings: &SmtpSettings, mail: &Mail) -> Result<(), MailError> {
    if mail.to.is_empty() {
        return Err(MailError::NoRecipients);
    }
    let mut builder = Message::builder()
        .from(mailbox("from", &settings.from)?)
        .subject(mail.subject.clone());
    for to in &mail.to {
        builder = builder.to(mailbox("to", to)?);
    }
    for cc in &mail.cc {
        builder = builder.cc(mailbox("cc", cc)?);
    }
    let message = match &mail.body {
        MailBody::Text(text) => builder.header(ContentType::TEXT_PLAIN).body(text.clone()),
        MailBody::Html(html) => builder.header(ContentType::TEXT_HTML).body(html.clone()),
    }
    .map_err(|e| MailError::Build(e.to_string()))?;

    let server = format!("{}:{}", settings.host, settings.port);
    let failed = |message: String| MailError::Send {
        server: server.clone(),
        message,
    };
    let tls = if settings.ssl || settings.starttls {
        let parameters = TlsParameters::new(settings.host.clone())
            .map_err(|e| failed(format!("TLS setup: {e}")))?;
        if settings.ssl {
            Tls::Wrapper(parameters)
        } else {
            Tls::Required(parameters)
        }
    } else {
        Tls::None
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
        .port(settings.port)
        .timeout(Some(settings.timeout))
        .tls(tls);
    if let Some(user) = &settings.user {
        transport = transport.credentials(Credentials::new(
            user.clone(),
            settings.password.clone().unwrap_or_default(),
        ));
    }
    let transport = transport.build();
    match tokio::time::timeout(settings.timeout, transport.send(message)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if refused(&e) => Err(MailError::Unreachable {
            server,
            message: error_chain(&e),
        }),
        Ok(Err(e)) => Err(failed(error_chain(&e))),
        Err(_) => Err(MailError::Timeout {
            server,
            seconds: settings.timeout.as_secs_f64(),
        }),
    }
}

/// Whether connecting failed because nothing answers at the address.
fn refused(err: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind;
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
            )
        {
            return true;
        }
        source = cause.source();
    }
    false
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn specs_become_mails() {
        let spec = json!({"to": "a@x.org, b@x.org", "cc": ["c@x.org"], "html": "<b>hi</b>"});
        let mail = Mail::from_spec(
            &serde_json::from_value(spec).expect("an email spec"),
            "fallback",
        );
        assert_eq!(mail.to, vec!["a@x.org", "b@x.org"]);
        assert_eq!(mail.cc, vec!["c@x.org"]);
        assert_eq!(mail.subject, "fallback");
        assert_eq!(mail.body, MailBody::Html("<b>hi</b>".into()));
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let settings = SmtpSettings {
            password: Some("hunter2".into()),
            ..SmtpSettings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_says_what_to_configure() {
        // A port just released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let settings = SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            starttls: false,
            ..SmtpSettings::default()
        };
        let mail = Mail {
            to: vec!["a@x.org".into()],
            cc: vec![],
            subject: "s".into(),
            body: MailBody::Text("t".into()),
        };
        let err = send(&settings, &mail).await.expect_err("nobody listens");
        let text = err.to_string();
        assert!(matches!(err, MailError::Unreachable { .. }), "{text}");
        assert!(
            text.starts_with(&format!("SMTP server 127.0.0.1:{port}: "))
                && text.contains("set smtp.host and smtp.port")
                && text.contains("UPDRAFT__SMTP__HOST"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn bad_addresses_are_named() {
        let mail = Mail {
            to: vec!["not an address".into()],
            cc: vec![],
            subject: "s".into(),
            body: MailBody::Text("t".into()),
        };
        let err = send(&SmtpSettings::default(), &mail)
            .await
            .expect_err("refused");
        assert!(
            err.to_string()
                .contains("invalid to address 'not an address'"),
            "{err}"
        );
    }
}
