//! Host requests: ping, get, stop, labels, scale, auction, providers; and what does not parse.

use trellis_lattice::event::Event;
use trellis_lattice::ErrorKind;

use super::fakes::{kind, Bench, HOST};

#[tokio::test]
async fn ping_get_and_stop() {
    let b = Bench::new();
    let s = &b.subjects;
    let summary = b.ask(&s.host_ping(), "").await.unwrap();
    assert_eq!(summary["id"], HOST);
    let inv = b.ask(&s.host_get(HOST), "").await.unwrap();
    assert_eq!(inv["friendly_name"], "quiet-otter-0001");
    b.ask(&s.host_stop(HOST), r#"{"timeout_ms":250}"#)
        .await
        .unwrap();
    assert_eq!(*b.host.stops.lock().unwrap(), vec![Some(250)]);
    assert_eq!(
        kind(&b.ask(&s.host_stop(HOST), "{").await),
        ErrorKind::Invalid
    );
    assert_eq!(b.host.stops.lock().unwrap().len(), 1);
}

/// The stop begins once the answer has left (stopping closes the connection it leaves by).
#[tokio::test]
async fn a_stop_is_requested_after_its_answer_left() {
    let b = Bench::new();
    let subject = b.subjects.host_stop(HOST);
    let request = trellis_lattice::server::ControlRequest::parse(
        &b.subjects,
        &subject,
        br#"{"timeout_ms":100}"#,
    );
    let stops_when_answered = std::sync::Mutex::new(None);
    b.router
        .serve(request, None, &b.trace, |answer| {
            assert!(answer.is_ok(), "{answer:?}");
            *stops_when_answered.lock().unwrap() = Some(b.host.stops.lock().unwrap().len());
            std::future::ready(())
        })
        .await;
    assert_eq!(*stops_when_answered.lock().unwrap(), Some(0));
    assert_eq!(*b.host.stops.lock().unwrap(), vec![Some(100)]);
}

#[tokio::test]
async fn labels_change_and_are_announced() {
    let b = Bench::new();
    let s = &b.subjects;
    let labels = b
        .ask(&s.label_put(HOST), r#"{"key":"zone","value":"north"}"#)
        .await
        .unwrap();
    assert_eq!(labels["zone"], "north");
    let removed = b
        .ask(&s.label_del(HOST), r#"{"key":"zone"}"#)
        .await
        .unwrap();
    assert!(removed.get("zone").is_none());
    let events = b.events();
    assert!(
        matches!(&events[..], [Event::LabelsChanged(a), Event::LabelsChanged(b)]
        if a.labels["zone"] == "north" && !b.labels.contains_key("zone"))
    );

    let missing = b.ask(&s.label_del(HOST), r#"{"key":"zone"}"#).await;
    assert_eq!(kind(&missing), ErrorKind::NotFound);
    let builtin = b
        .ask(&s.label_put(HOST), r#"{"key":"trellis.arch","value":"x"}"#)
        .await;
    assert_eq!(kind(&builtin), ErrorKind::Invalid);
    let garbage = b.ask(&s.label_put(HOST), "[]").await;
    assert!(garbage
        .unwrap_err()
        .message
        .contains("malformed label put request"));
    assert_eq!(
        b.events().len(),
        2,
        "failed label requests announce nothing"
    );
}

#[tokio::test]
async fn scale_answers_and_announces_with_the_requests_annotations() {
    let b = Bench::new();
    let s = &b.subjects;
    let done = b
        .ask(
            &s.component_scale(HOST),
            r#"{"component_id":"c","image":"/c.wasm","replicas":3,"annotations":{"app":"a"}}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        (done["replicas"].as_u64(), done["host_id"].as_str()),
        (Some(3), Some(HOST))
    );
    assert_eq!(done["annotations"]["app"], "a");
    assert!(matches!(&b.events()[..], [Event::ComponentScaled(c)]
        if c.component_id == "c" && c.annotations["app"] == "a"));

    *b.components.fail_with.lock().unwrap() = Some(trellis_lattice::ControlError::not_found(
        "component d is not running",
    ));
    let failed = b
        .ask(
            &s.component_scale(HOST),
            r#"{"component_id":"d","replicas":1}"#,
        )
        .await;
    assert_eq!(kind(&failed), ErrorKind::NotFound);
    assert!(matches!(&b.events()[1], Event::ComponentScaleFailed(f)
        if f.component_id == "d" && f.reason.contains("not running")));

    // Garbage on the scale subject is a failed scale too, announced as one.
    let garbage = b.ask(&s.component_scale(HOST), "{not json").await;
    assert!(garbage
        .unwrap_err()
        .message
        .contains("malformed scale request"));
    assert!(matches!(&b.events()[2], Event::ComponentScaleFailed(f)
        if f.reason.contains("malformed scale request")));
    assert_eq!(b.components.scales.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn auctions_offer_only_when_the_labels_match() {
    let b = Bench::new();
    let s = &b.subjects;
    b.components
        .running
        .lock()
        .unwrap()
        .insert("c".into(), vec![]);
    let offer = b
        .ask(
            &s.component_auction(),
            r#"{"component_id":"c","constraints":{"tier":"edge"}}"#,
        )
        .await
        .unwrap();
    assert_eq!(offer["host_id"], HOST);
    assert_eq!(offer["already_running"], true);
    assert_eq!(offer["component_count"], 1);
    let declined = b
        .ask(
            &s.component_auction(),
            r#"{"component_id":"c","constraints":{"tier":"cloud"}}"#,
        )
        .await;
    assert_eq!(
        kind(&declined),
        ErrorKind::Refused,
        "a host that does not match declines, so the auction can count it"
    );
    let bad = b.ask(&s.component_auction(), "{bad").await;
    assert_eq!(
        kind(&bad),
        ErrorKind::Invalid,
        "a malformed auction is answered"
    );
}

#[tokio::test]
async fn providers_start_and_stop_and_are_announced() {
    let b = Bench::new();
    let s = &b.subjects;
    let start = r#"{"provider_id":"kv","image":"builtin://keyvalue-nats"}"#;
    let reply = b.ask(&s.provider_start(HOST), start).await.unwrap();
    assert_eq!(reply["provider_id"], "kv");
    // The same start again changes nothing and says nothing.
    b.ask(&s.provider_start(HOST), start).await.unwrap();
    b.ask(&s.provider_stop(HOST), r#"{"provider_id":"kv"}"#)
        .await
        .unwrap();
    let events = b.events();
    assert!(
        matches!(&events[..], [Event::ProviderStarted(p), Event::ProviderStopped(q)]
        if p.provider_id == "kv" && q.provider_id == "kv")
    );

    let missing = b
        .ask(&s.provider_stop(HOST), r#"{"provider_id":"kv"}"#)
        .await;
    assert_eq!(kind(&missing), ErrorKind::NotFound);

    b.components
        .running
        .lock()
        .unwrap()
        .insert("web".into(), vec![]);
    let taken = b
        .ask(
            &s.provider_start(HOST),
            r#"{"provider_id":"web","image":"builtin://http-server"}"#,
        )
        .await;
    assert_eq!(kind(&taken), ErrorKind::Conflict);

    *b.providers.fail_with.lock().unwrap() = Some(trellis_lattice::ControlError::internal(
        "provider kv exited",
    ));
    let failed = b.ask(&s.provider_start(HOST), start).await;
    assert_eq!(kind(&failed), ErrorKind::Internal);
    assert!(
        matches!(b.events().last(), Some(Event::ProviderStartFailed(f))
        if f.reason == "provider kv exited")
    );
}

#[tokio::test]
async fn requests_hosts_do_not_serve_are_invalid() {
    let b = Bench::new();
    let s = &b.subjects;
    let unknown = b.ask("trellis.ctl.v1.test.host.dance.x", "").await;
    assert!(unknown
        .unwrap_err()
        .message
        .contains("unknown control request host.dance"));
    let app = b.ask(&s.app("list"), "").await;
    assert_eq!(kind(&app), ErrorKind::Invalid);
    let describe = b
        .ask(&s.component_describe("c"), r#"{"component_id":"c"}"#)
        .await;
    assert_eq!(kind(&describe), ErrorKind::Invalid);
}
