//! `GET /v1/providers/{providerId}/availability`.

use jiff::{Timestamp, ToSpan};
use serde_json::json;

use crate::helpers::{day, instant, open_provider, slot, spawn_app, starts};

#[tokio::test]
async fn one_date_when_to_is_absent_in_the_providers_zone() {
    let app = spawn_app().await;
    app.open_provider("ana").await;

    let a = app
        .availability("ana", &format!("from={}", day(3)))
        .await
        .ok(200);
    assert_eq!(a["providerId"], "ana");
    assert_eq!(a["timezone"], "UTC");
    assert_eq!(a["slotMinutes"], 30);
    let days = a["days"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["date"], day(3).to_string());
    let slots = days[0]["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 48);
    assert_eq!(
        slots[0],
        json!({ "start": format!("{}T00:00:00+00:00", day(3)),
                "end": format!("{}T00:30:00+00:00", day(3)) })
    );
    assert_eq!(
        slots[47],
        json!({ "start": format!("{}T23:30:00+00:00", day(3)),
                "end": format!("{}T00:00:00+00:00", day(4)) })
    );
}

#[tokio::test]
async fn every_date_of_the_range_appears_in_order_even_without_slots() {
    let app = spawn_app().await;
    let mut body = open_provider();
    body["dateOverrides"] = json!([{ "date": day(4).to_string(), "hours": [] }]);
    app.create_provider("ana", &body).await;

    // Yesterday (all past), today, ..., day 5 (day 4 closed by an override).
    let a = app
        .availability("ana", &format!("from={}&to={}", day(-1), day(5)))
        .await
        .ok(200);
    let days = a["days"].as_array().unwrap();
    let dates: Vec<String> = days
        .iter()
        .map(|d| d["date"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (-1..=5).map(|n| day(n).to_string()).collect();
    assert_eq!(dates, expected);
    assert!(starts(&days[0]).is_empty(), "yesterday is past");
    assert!(starts(&days[5]).is_empty(), "closed by an override");
    assert_eq!(starts(&days[4]).len(), 48);
    assert_eq!(starts(&days[6]).len(), 48);

    // 31 dates is the most: accepted.
    let a = app
        .availability("ana", &format!("from={}&to={}", day(1), day(31)))
        .await
        .ok(200);
    assert_eq!(a["days"].as_array().unwrap().len(), 31);
}

#[tokio::test]
async fn the_display_zone_decides_dates_and_offsets() {
    let app = spawn_app().await;
    app.open_provider("ana").await;

    // Asia/Kolkata is UTC+05:30 all year: the date starts at 18:30 UTC the
    // day before, which is a slot start of the UTC grid.
    let a = app
        .availability("ana", &format!("from={}&timezone=Asia/Kolkata", day(3)))
        .await
        .ok(200);
    assert_eq!(a["timezone"], "Asia/Kolkata");
    let day0 = &a["days"][0];
    assert_eq!(day0["date"], day(3).to_string());
    let s = starts(day0);
    assert_eq!(s.len(), 48);
    assert_eq!(s[0], format!("{}T00:00:00+05:30", day(3)));
    assert!(s.iter().all(|x| x.ends_with("+05:30")), "{s:?}");
    assert_eq!(
        instant(&s[0]),
        instant(&format!("{}T18:30:00Z", day(2))),
        "the same instant"
    );

    // America/Lima is UTC-05:00 (no DST).
    let a = app
        .availability(
            "ana",
            &format!("from={}&to={}&timezone=America/Lima", day(3), day(4)),
        )
        .await
        .ok(200);
    assert_eq!(a["timezone"], "America/Lima");
    assert_eq!(a["days"].as_array().unwrap().len(), 2);
    let s = starts(&a["days"][1]);
    assert_eq!(s[0], format!("{}T00:00:00-05:00", day(4)));
    assert!(s.iter().all(|x| x.ends_with("-05:00")), "{s:?}");
    assert!(
        a["days"][1]["slots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["end"].as_str().unwrap().ends_with("-05:00"))
    );
}

#[tokio::test]
async fn an_appointment_hides_its_slot() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    app.booked("ana", "p1", &slot(3, "10:00")).await;

    let s = starts(
        &app.availability("ana", &format!("from={}", day(3)))
            .await
            .ok(200)["days"][0],
    );
    assert_eq!(s.len(), 47);
    assert!(!s.contains(&format!("{}T10:00:00+00:00", day(3))));
    assert!(s.contains(&format!("{}T09:30:00+00:00", day(3))));
    assert!(s.contains(&format!("{}T10:30:00+00:00", day(3))));
}

#[tokio::test]
async fn buffers_hide_the_neighbouring_slots() {
    let app = spawn_app().await;
    let mut body = open_provider();
    body["bufferMinutes"] = json!(30);
    app.create_provider("ana", &body).await;
    app.booked("ana", "p1", &slot(3, "10:00")).await;

    let s = starts(
        &app.availability("ana", &format!("from={}", day(3)))
            .await
            .ok(200)["days"][0],
    );
    // [09:30, 10:30) and [10:30, 11:30) with their buffers overlap
    // [10:00, 11:00); 09:00 and 11:00 do not.
    for hidden in ["09:30", "10:00", "10:30"] {
        assert!(
            !s.contains(&format!("{}T{hidden}:00+00:00", day(3))),
            "{hidden}"
        );
    }
    for shown in ["09:00", "11:00"] {
        assert!(
            s.contains(&format!("{}T{shown}:00+00:00", day(3))),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn notice_and_horizon_hide_slots() {
    let app = spawn_app().await;
    let mut body = open_provider();
    body["minNoticeMinutes"] = json!(3 * 24 * 60);
    app.create_provider("notice", &body).await;

    let a = app
        .availability("notice", &format!("from={}&to={}", day(1), day(5)))
        .await
        .ok(200);
    let days = a["days"].as_array().unwrap();
    assert_eq!(days.len(), 5);
    assert!(starts(&days[0]).is_empty(), "day 1 is within the notice");
    assert!(starts(&days[1]).is_empty(), "day 2 is within the notice");
    assert_eq!(starts(&days[4]).len(), 48, "day 5 is past the notice");
    // Day 3: only the slots from now + 3 days on.
    let earliest = Timestamp::now() + 72.hours();
    let day3 = starts(&days[2]);
    assert!(
        day3.iter().all(|s| instant(s) >= earliest - 5.seconds()),
        "{day3:?}"
    );
    if let Some(first) = day3.first() {
        assert!(instant(first) <= earliest + 31.minutes(), "{first}");
    }

    let mut body = open_provider();
    body["horizonDays"] = json!(2);
    app.create_provider("near", &body).await;
    let a = app
        .availability("near", &format!("from={}&to={}", day(1), day(4)))
        .await
        .ok(200);
    let days = a["days"].as_array().unwrap();
    assert_eq!(days.len(), 4);
    assert_eq!(starts(&days[0]).len(), 48, "day 1 is within the horizon");
    assert!(starts(&days[3]).is_empty(), "day 4 is beyond the horizon");
}

#[tokio::test]
async fn a_cancelled_appointment_frees_its_slot_at_once() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let a = app.booked("ana", "p1", &slot(3, "10:00")).await;
    let id = a["id"].as_str().unwrap();
    app.cancel(id, None, None).await.ok(200);

    let s = starts(
        &app.availability("ana", &format!("from={}", day(3)))
            .await
            .ok(200)["days"][0],
    );
    assert!(s.contains(&format!("{}T10:00:00+00:00", day(3))));
    app.booked("ana", "p2", &slot(3, "10:00")).await;
}

#[tokio::test]
async fn buffers_are_the_providers_current_ones_and_schedules_never_move_appointments() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let a = app.booked("ana", "p1", &slot(3, "10:00")).await;

    // The buffer grows after the booking: availability applies the new one.
    let mut body = open_provider();
    body["bufferMinutes"] = json!(30);
    app.put_provider("ana", &body).await.ok(200);
    let s = starts(
        &app.availability("ana", &format!("from={}", day(3)))
            .await
            .ok(200)["days"][0],
    );
    for hidden in ["09:30", "10:00", "10:30"] {
        assert!(
            !s.contains(&format!("{}T{hidden}:00+00:00", day(3))),
            "{hidden}: {s:?}"
        );
    }

    // Closing the day keeps the appointment as it was.
    let mut closed = open_provider();
    closed["dateOverrides"] = json!([{ "date": day(3).to_string(), "hours": [] }]);
    app.put_provider("ana", &closed).await.ok(200);
    let still = app.appointment(a["id"].as_str().unwrap()).await.ok(200);
    assert_eq!(still["start"], a["start"]);
    assert_ne!(still["status"], "cancelled");
    assert_eq!(still["version"], 1);
}
