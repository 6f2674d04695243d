//! What the store reads for the console, on both engines: deliveries by
//! every filter and page, events routed or not, activity, destinations'
//! health, and discarding.

use crate::helpers::*;
use crate::Console;
use raaft_relay::store::inspect::EventFilter;
use raaft_relay::store::{ListFilter, Status};
use std::time::Duration;

on_both_stores! {
    async fn filters_pages_activity_and_health_read_the_store(store) {
        let console = Console::start_on("", &store).await;
        console.hook.then(Answer::new(400, "no such hook"));
        // hook: dead (first), then delivered; team: canceled ones only.
        console.post("saved-discount.json", |_| {}).await;
        // Sent before the others: the hook's one refusal is its.
        console.wait_for_status(Status::Dead, 1).await;
        console.post("canceled.json", |e| e["customer"]["id"] = "cus_filter_1".into()).await;
        console.post("aborted.json", |e| e["customer"]["id"] = "cus_filter_2".into()).await;
        console.wait_for_status(Status::Delivered, 3).await;
        console.wait_for_status(Status::Dead, 1).await;
        let s = console.app.store.clone();
        let list = |f: ListFilter| {
            let s = s.clone();
            async move { s.list(&ListFilter { limit: 0, ..f }).await.unwrap() }
        };
        assert_eq!(list(ListFilter::default()).await.len(), 4);
        let dead = list(ListFilter { status: Some(Status::Dead), ..Default::default() }).await;
        assert_eq!((dead.len(), dead[0].outcome.as_deref()), (1, Some("saved")));
        assert_eq!(list(ListFilter { outcome: Some("canceled".into()), ..Default::default() }).await.len(), 2);
        let team = list(ListFilter { route: Some("cancellations".into()), ..Default::default() }).await;
        assert_eq!(team.iter().map(|d| d.destination.as_str()).collect::<Vec<_>>(), ["team"]);
        assert!(list(ListFilter { route: Some("cancel".into()), ..Default::default() }).await.is_empty(), "whole route names only");
        let customer = list(ListFilter { customer: Some("cus_filter_2".into()), ..Default::default() }).await;
        assert_eq!((customer.len(), customer[0].outcome.as_deref()), (1, Some("aborted")));
        // Pages: newest first, the next page after the last id.
        let first = s.list(&ListFilter { limit: 3, ..Default::default() }).await.unwrap();
        let rest = list(ListFilter { before: Some(first[2].id.clone()), ..Default::default() }).await;
        assert_eq!(rest.len(), 1);
        assert!(first.windows(2).all(|w| w[0].id > w[1].id) && rest[0].id < first[2].id);
        let of_event = list(ListFilter { event_id: Some(customer[0].event_id.clone()), ..Default::default() }).await;
        assert_eq!(of_event.len(), 1);

        let events = s.list_events(&EventFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].outcome.as_deref(), Some("aborted"));
        let canceled = s.list_events(&EventFilter { outcome: Some("canceled".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!((canceled.len(), canceled[0].deliveries), (1, 2));
        let by_customer = s.list_events(&EventFilter { customer: Some("cus_filter_1".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(by_customer[0].id, canceled[0].id);
        let next = s.list_events(&EventFilter { before: Some(events[1].id.clone()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(next.len(), 1);
        let detail = s.event(&canceled[0].id).await.unwrap().unwrap();
        assert_eq!(detail.event["history"]["nth"], 1, "the event comes with its facts");
        assert!(s.event("01jxnotanevent00000000000").await.unwrap().is_none());

        let periods = s.activity(&[Duration::from_secs(3600), Duration::from_millis(1)]).await.unwrap();
        assert_eq!((periods[1].events_total(), periods[1].deliveries_with(Status::Delivered)), (0, 0));
        let hour = &periods[0];
        assert_eq!(hour.events.iter().find(|(o, _)| o == "canceled").unwrap().1, 1);
        assert_eq!(hour.events_total(), 3);
        assert_eq!(hour.deliveries_with(Status::Delivered), 3);
        assert_eq!(hour.deliveries_with(Status::Dead), 1);

        let health = s.destination_health(&["hook".to_owned(), "team".to_owned(), "gone".to_owned()]).await.unwrap();
        assert_eq!(health.iter().find(|h| h.destination == "gone").unwrap().attempts_24h, 0);
        let hook = health.iter().find(|h| h.destination == "hook").unwrap();
        assert_eq!((hook.attempts_1h, hook.delivered_1h, hook.attempts_24h), (3, 2, 3));
        assert!(hook.last_error.as_deref().unwrap().contains("400"), "{:?}", hook.last_error);
        assert_eq!(hook.consecutive_failures, 0, "a success came after the failure");
        let team = health.iter().find(|h| h.destination == "team").unwrap();
        assert_eq!((team.attempts_24h, team.delivered_24h, team.consecutive_failures), (1, 1, 0));

        // Discard: pending only.
        assert!(s.discard(&[dead[0].id.clone()], "x").await.unwrap().is_empty());
    }
}
