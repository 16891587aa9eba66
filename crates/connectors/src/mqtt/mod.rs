//! The `mqtt` connector (MQTT 3.1.1, such as Mosquitto): publish with QoS 0 or 1, and
//! subscribe to a topic filter, over TCP or TLS (trusting the public roots and, for a broker
//! with a certificate of its own, a CA given as PEM). A subscription keeps a session at the broker under a name
//! of its recipe, so that QoS 1 messages sent while Weft is away wait for it, and it
//! acknowledges each one only after its job is committed.

use async_trait::async_trait;
use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS, TlsConfiguration,
    Transport,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Connection;
use crate::connector::{
    ActionSpec, CallContext, ConnectionField, Connector, MessageSink, TriggerKind, TriggerSpec,
};
use crate::error::ConnectorError;

/// How long a publish may take, connection included, when the step sets no timeout.
const PUBLISH_TIME: Duration = Duration::from_secs(10);

pub struct MqttConnector;

#[async_trait]
impl Connector for MqttConnector {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn description(&self) -> &'static str {
        "Publishes to and subscribes to topics of an MQTT broker."
    }

    fn needs_connection(&self) -> bool {
        true
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        let field = ConnectionField::new;
        vec![
            field("host", "Host name or address.", true, false),
            field(
                "port",
                "Port (default 1883, or 8883 with tls).",
                false,
                false,
            ),
            field(
                "tls",
                "Connect with TLS, true or false (default false).",
                false,
                false,
            ),
            field(
                "ca_certificate",
                "With tls: the PEM certificate of a CA to trust besides the public ones (for a broker whose certificate is its own).",
                false,
                false,
            ),
            field("username", "User name.", false, false),
            field("password", "Password.", false, true),
        ]
    }

    fn actions(&self) -> Vec<ActionSpec> {
        vec![ActionSpec {
            name: "publish",
            description: "Publishes a message to a topic; with QoS 1, waits for the broker's acknowledgement.",
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "topic": { "type": "string" },
                    "message": { "description": "Text is sent as it is; anything else as its JSON." },
                    "qos": { "type": "integer", "enum": [0, 1], "default": 1 },
                    "retain": { "type": "boolean", "default": false },
                },
                "required": ["topic", "message"],
            }),
            output_schema: json!({
                "type": "object",
                "properties": { "acknowledged": { "type": "boolean", "description": "True when the broker acknowledged it (QoS 1)." } },
                "required": ["acknowledged"],
            }),
        }]
    }

    fn triggers(&self) -> Vec<TriggerSpec> {
        vec![TriggerSpec {
            name: "subscribe",
            kind: TriggerKind::Subscribe,
            description: "Messages on a topic filter (`+` and `#` wildcards). With QoS 1 (the \
                default) the broker keeps the subscription's messages while Weft is away, and \
                each is acknowledged once its job is committed.",
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "topic": { "type": "string", "description": "A topic filter." },
                    "qos": { "type": "integer", "enum": [0, 1], "default": 1 },
                },
                "required": ["topic"],
            }),
            output_schema: json!({
                "type": "object",
                "properties": {
                    "payload": { "description": "Parsed when it is JSON, else text (base64 when it is not UTF-8)." },
                    "topic": { "type": "string" },
                    "retained": { "type": "boolean" },
                },
                "required": ["payload", "topic"],
            }),
        }]
    }

    fn check_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        options(connection, "weft-check").map(|_| ())
    }

    async fn test_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        let (client, mut events) = AsyncClient::new(options(connection, &client_id("test"))?, 10);
        let work = async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(error) => return Err(refused(connection, error)),
                }
            }
        };
        let outcome = crate::error::within(Some(PUBLISH_TIME), work).await;
        let _ = client.try_disconnect();
        outcome
    }

    async fn call(
        &self,
        action: &str,
        connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let connection = connection
            .ok_or_else(|| ConnectorError::validation("the mqtt connector needs a `connection`"))?;
        if action != "publish" {
            return Err(ConnectorError::validation(format!(
                "no action `{action}` (the mqtt connector has publish)"
            )));
        }
        let input = input
            .as_object()
            .ok_or_else(|| ConnectorError::validation("mqtt.publish input must be an object"))?;
        let topic = input
            .get("topic")
            .and_then(Value::as_str)
            .filter(|topic| !topic.is_empty() && !topic.contains(['+', '#']))
            .ok_or_else(|| {
                ConnectorError::validation("`topic` is required: text without `+` or `#`")
            })?;
        let message = input
            .get("message")
            .ok_or_else(|| ConnectorError::validation("`message` is required"))?;
        let qos = qos_of(input.get("qos"))?;
        let retain = input.get("retain") == Some(&Value::Bool(true));
        let (client, events) = AsyncClient::new(options(connection, &client_id("publish"))?, 10);
        client
            .publish(topic, qos, retain, crate::message::body(message))
            .await
            .map_err(|error| ConnectorError::remote(format!("cannot publish: {error}")))?;
        let limit = context.timeout.unwrap_or(PUBLISH_TIME);
        let acknowledged =
            crate::error::within(Some(limit), until_sent(events, qos, connection)).await;
        let _ = client.try_disconnect();
        Ok(json!({ "acknowledged": acknowledged? }))
    }

    async fn subscribe(
        &self,
        connection: Option<&Connection>,
        options_given: &Map<String, Value>,
        sink: &dyn MessageSink,
    ) -> Result<(), ConnectorError> {
        let connection = connection
            .ok_or_else(|| ConnectorError::validation("the mqtt connector needs a `connection`"))?;
        let topic = options_given
            .get("topic")
            .and_then(Value::as_str)
            .ok_or_else(|| ConnectorError::validation("`topic` is required, as text"))?;
        let qos = qos_of(options_given.get("qos"))?;
        // A lasting session under the recipe's name: the broker keeps QoS 1 messages for it
        // while it is away, and sends again those it did not acknowledge.
        // The session is named after the recipe and its topic filter: a recipe that changes
        // its filter starts a session of its own instead of inheriting the old one's.
        let filter_hash = topic.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut settings = options(
            connection,
            &format!("weft-{}-{filter_hash:016x}", sink.subscriber()),
        )?;
        settings.set_clean_session(false).set_manual_acks(true);
        let (client, mut events) = AsyncClient::new(settings, 100);
        client
            .subscribe(topic, qos)
            .await
            .map_err(|error| ConnectorError::remote(format!("cannot subscribe: {error}")))?;
        loop {
            let event = events
                .poll()
                .await
                .map_err(|error| refused(connection, error))?;
            let Event::Incoming(Incoming::Publish(publish)) = event else {
                continue;
            };
            let message = json!({
                "payload": crate::message::payload(&publish.payload),
                "topic": publish.topic,
                "retained": publish.retain,
            });
            sink.deliver(message).await.map_err(|error| {
                ConnectorError::remote(format!(
                    "a message on `{}` could not be queued (it is not acknowledged): {error}",
                    publish.topic
                ))
            })?;
            client
                .ack(&publish)
                .await
                .map_err(|error| ConnectorError::remote(format!("cannot acknowledge: {error}")))?;
        }
    }
}

/// Drives a publishing client until its message is out (QoS 0) or acknowledged (QoS 1).
async fn until_sent(
    mut events: EventLoop,
    qos: QoS,
    connection: &Connection,
) -> Result<bool, ConnectorError> {
    loop {
        match events
            .poll()
            .await
            .map_err(|error| refused(connection, error))?
        {
            Event::Outgoing(Outgoing::Publish(_)) if qos == QoS::AtMostOnce => return Ok(false),
            Event::Incoming(Incoming::PubAck(_)) => return Ok(true),
            _ => {}
        }
    }
}

fn qos_of(value: Option<&Value>) -> Result<QoS, ConnectorError> {
    match value.and_then(Value::as_u64) {
        None if value.is_none_or(Value::is_null) => Ok(QoS::AtLeastOnce),
        Some(0) => Ok(QoS::AtMostOnce),
        Some(1) => Ok(QoS::AtLeastOnce),
        _ => Err(ConnectorError::validation("`qos` must be 0 or 1")),
    }
}

/// A client id no other client of this process uses at the same time.
fn client_id(purpose: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "weft-{purpose}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn options(connection: &Connection, client_id: &str) -> Result<MqttOptions, ConnectorError> {
    let tls = connection.flag("tls");
    let mut options = MqttOptions::new(
        client_id,
        connection.required_text("host")?,
        connection.port(if tls { 8883 } else { 1883 })?,
    );
    options.set_keep_alive(Duration::from_secs(30));
    if tls {
        let config = tls_config(connection)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )));
    }
    if let Some(username) = connection.text("username") {
        options.set_credentials(username, connection.text("password").unwrap_or_default());
    }
    Ok(options)
}

/// TLS that trusts the public roots and the connection's own CA, if it names one.
fn tls_config(connection: &Connection) -> Result<rustls::ClientConfig, ConnectorError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let invalid = |problem: String| {
        ConnectorError::validation(format!("connection `{}`: {problem}", connection.name))
    };
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = connection.text("ca_certificate") {
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let certificate = certificate
                .map_err(|error| invalid(format!("ca_certificate is not PEM: {error}")))?;
            roots
                .add(certificate)
                .map_err(|error| invalid(format!("ca_certificate: {error}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(invalid(
                "ca_certificate holds no PEM certificate".to_owned(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(format!("TLS: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn refused(connection: &Connection, error: rumqttc::ConnectionError) -> ConnectorError {
    ConnectorError::remote(format!(
        "the MQTT broker of connection `{}` refused or failed: {error}",
        connection.name
    ))
}
