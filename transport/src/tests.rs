//! The transport against impostors, in process: a server or client with the wrong key, or
//! with a key that is not a peer key, never completes a connection that claims otherwise.

use crate::{DialError, Dialer, KnownHosts, PeerAddress, TlsIdentity, TlsListener};
use axum::serve::Listener as _;
use wasmhive_protocol::identity::PeerKey;

fn key(seed: u8) -> PeerKey {
    PeerKey::from_secret([seed; 32])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A TLS listener as `seed`'s key that answers every accepted connection with the id it proved.
async fn server(seed: u8) -> (String, tokio::sync::mpsc::UnboundedReceiver<Option<String>>) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = tcp.local_addr().unwrap().to_string();
    let mut listener = TlsListener::new(tcp, &TlsIdentity::new(&key(seed))).unwrap();
    let (proven, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (_stream, remote) = listener.accept().await;
            let _ = proven.send(remote.peer_id);
        }
    });
    (address, receiver)
}

#[test]
fn both_ends_are_proven_and_a_pinned_dial_refuses_any_other_key() {
    runtime().block_on(async {
        let (address, mut accepted) = server(1).await;
        let client = Dialer::new(Some(TlsIdentity::new(&key(2))), None);
        let (_stream, proven) = client.dial(&PeerAddress::pinned(&address, &key(1).peer_id())).await.unwrap();
        assert_eq!(proven, key(1).peer_id());
        assert_eq!(
            accepted.recv().await.unwrap(),
            Some(key(2).peer_id()),
            "the server learns the client's id"
        );
        let refused = client.dial(&PeerAddress::pinned(&address, &key(3).peer_id())).await.unwrap_err();
        assert!(matches!(refused, DialError::WrongPeer { .. }), "{refused}");
        assert!(refused.to_string().contains(&format!("{} was expected", key(3).peer_id())), "{refused}");
        let anonymous = Dialer::new(None, None);
        anonymous.dial(&PeerAddress::pinned(&address, &key(1).peer_id())).await.unwrap();
        assert_eq!(accepted.recv().await.unwrap(), None, "an API client proves nothing");
    });
}

#[test]
fn an_address_learnt_on_first_use_refuses_a_new_key() {
    let data = std::env::temp_dir().join(format!("wasmhive-tofu-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    runtime().block_on(async {
        let (address, _accepted) = server(1).await;
        let dialer = Dialer::new(None, Some(KnownHosts::in_data_dir(&data)));
        let unpinned = PeerAddress::parse(&address).unwrap();
        dialer.dial(&unpinned).await.unwrap();
        assert_eq!(KnownHosts::in_data_dir(&data).get(&address), Some(key(1).peer_id()));
        std::fs::write(data.join("known_hosts"), format!("{address} {}\n", key(9).peer_id())).unwrap();
        let changed = dialer.dial(&unpinned).await.unwrap_err();
        assert!(matches!(changed, DialError::KnownHostChanged { .. }), "{changed}");
        assert!(changed.to_string().contains("delete its line"), "{changed}");
    });
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn a_client_with_a_certificate_that_is_not_a_peer_key_proves_no_id() {
    runtime().block_on(async {
        let (address, mut accepted) = server(1).await;
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let certificate =
            rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap().self_signed(&other).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(crate::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(crate::verifier::PeerServerVerifier {
                expected_peer_id: None,
            }))
            .with_client_auth_cert(
                vec![certificate.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(other.serialize_der().into()),
            )
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("x").unwrap();
        // The server asks for ed25519 only, so this client cannot sign with its key: at most
        // it goes on without a certificate, as an anonymous API client that proves nothing.
        let _connected = connector.connect(name, tcp).await;
        let accepted = tokio::time::timeout(std::time::Duration::from_millis(500), accepted.recv()).await;
        assert!(matches!(accepted, Err(_) | Ok(Some(None))), "no peer id is proven: {accepted:?}");
    });
}

#[test]
fn connections_over_the_caps_are_closed_before_their_handshake() {
    use crate::ConnectionLimits;
    runtime().block_on(async {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = tcp.local_addr().unwrap().to_string();
        let limits = ConnectionLimits { total_max: 10, per_address_max: 2 };
        let mut listener = TlsListener::with_limits(tcp, &TlsIdentity::new(&key(1)), limits).unwrap();
        let (kept, mut accepted) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let connection = listener.accept().await;
                let _ = kept.send(connection);
            }
        });
        let pinned = PeerAddress::pinned(&address, &key(1).peer_id());
        let dialer = Dialer::new(Some(TlsIdentity::new(&key(2))), None);
        let first = dialer.dial(&pinned).await.unwrap();
        let second = dialer.dial(&pinned).await.unwrap();
        let held = [accepted.recv().await.unwrap(), accepted.recv().await.unwrap()];
        assert!(dialer.dial(&pinned).await.is_err(), "a third connection from one address is refused");
        drop((first, second, held));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        dialer.dial(&pinned).await.expect("closed connections give their places back");
    });
}
