"""Load and measurements for scripts/bench-pipeline (run with the moto
virtual environment's Python, which has boto3 and requests).

  pipeline.py book     BASE SET N CONCURRENCY [RATE]
                                               books N distinct slots over HTTP
                                               for the providers of SET, at most
                                               RATE bookings per second if given
  pipeline.py measure  BASE SET N              waits for SET's N bookings to be
                                               confirmed, then prints throughput
                                               and booking -> confirmed latency
  pipeline.py ceiling  ENDPOINT M CONCURRENCY [HOP]
                                               what moto alone sustains for
                                               SNS publish -> SQS receive, or
                                               for another HOP (see HOPS)

Latency comes from the appointments themselves: `createdAt` is when the
booking was committed, and `updatedAt` of a confirmed appointment (whose
version is still 1) is when the confirmation was applied, both stamped by
cita-http's clock, so nothing is polled while the load runs.
"""

import concurrent.futures as cf
import datetime as dt
import json
import sys
import threading
import time
import uuid

import boto3
import requests

def providers(name):
    """The 8 providers of a set of bookings."""
    return [f"{name}-{i}" for i in range(8)]


def iso(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat()


def parse_ms(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000


def seed(base, name):
    day = [{"start": "00:00", "end": "24:00"}]
    week = {d: day for d in ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]}
    for i, p in enumerate(providers(name)):
        body = {"name": p, "countryIso": "PE" if i % 2 == 0 else "CL", "timezone": "UTC",
                "slotMinutes": 5, "horizonDays": 365, "weeklyHours": week}
        r = requests.put(f"{base}/v1/providers/{p}", json=body, timeout=10)
        r.raise_for_status()


def book(base, name, n, concurrency, rate=None):
    seed(base, name)
    names = providers(name)
    start = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    session = threading.local()

    t0 = time.time()

    def one(k):
        if rate:
            # Request k starts no earlier than k / rate seconds in.
            delay = t0 + k / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        s = getattr(session, "s", None) or requests.Session()
        session.s = s
        provider = names[k % len(names)]
        slot = start + dt.timedelta(minutes=5 * (k // len(names)))
        body = {"providerId": provider, "patientId": f"{name}-pt-{k}", "start": slot.strftime("%Y-%m-%dT%H:%M:%SZ")}
        r = s.post(f"{base}/v1/appointments", json=body, timeout=30)
        return r.status_code

    with cf.ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(one, range(n)))
    elapsed = time.time() - t0
    ok = sum(1 for s in statuses if s == 201)
    print(f"booked={ok} errors={n - ok} seconds={elapsed:.2f} booking_rps={n / elapsed:.0f}")
    if ok != n:
        sys.exit(1)


def all_appointments(base, name):
    out = []
    for p in providers(name):
        cursor = None
        while True:
            q = {"providerId": p, "limit": 200}
            if cursor:
                q["cursor"] = cursor
            page = requests.get(f"{base}/v1/appointments", params=q, timeout=30).json()
            out.extend(page["items"])
            cursor = page.get("nextCursor")
            if not cursor:
                break
    return out


def measure(base, name, n, patience=600):
    deadline = time.time() + patience
    while True:
        items = all_appointments(base, name)
        confirmed = [a for a in items if a["status"] == "confirmed"]
        if len(confirmed) >= n or time.time() > deadline:
            break
        time.sleep(1)
    if len(confirmed) < n:
        print(f"only {len(confirmed)} of {n} confirmed within {patience}s")
        sys.exit(1)
    created = [parse_ms(a["createdAt"]) for a in confirmed]
    done = [parse_ms(a["updatedAt"]) for a in confirmed]
    lat = sorted(d - c for c, d in zip(created, done))
    span = (max(done) - min(created)) / 1000

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))]

    print(f"confirmed={len(confirmed)} first_booking_to_last_confirmation_s={span:.2f} "
          f"confirmed_per_s={len(confirmed) / span:.1f} latency_p50_ms={pct(50):.0f} "
          f"latency_p99_ms={pct(99):.0f} latency_max_ms={lat[-1]:.0f}")


HOPS = ("sns", "sns-batch", "events", "events-batch")


def ceiling(endpoint, m, concurrency, hop="sns"):
    """M messages through one moto hop into an SQS queue, sent by
    CONCURRENCY threads and received (batches of 10, deleted in one call)
    by two: `sns` is SNS Publish -> filtered, raw subscription (the
    ceiling); `events` is EventBridge PutEvents -> rule -> SQS target (the
    country workers' hop); the `-batch` forms send 10 per call
    (PublishBatch, PutEvents with 10 entries)."""
    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="test", aws_secret_access_key="test")
    sqs = boto3.client("sqs", **kw)
    name = f"ceiling-{uuid.uuid4().hex[:8]}"
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    body = json.dumps({"type": "appointment.requested", "payload": "x" * 600})
    batch = 10 if hop.endswith("-batch") else 1
    if hop.startswith("sns"):
        sns = boto3.client("sns", **kw)
        topic = sns.create_topic(Name=name)["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                      Attributes={"RawMessageDelivery": "true",
                                  "FilterPolicy": json.dumps({"countryIso": ["PE"]})})
        attrs = {"countryIso": {"DataType": "String", "StringValue": "PE"},
                 "eventType": {"DataType": "String", "StringValue": "appointment.requested"}}

        def send(c):
            if batch == 1:
                c.publish(TopicArn=topic, Message=body, MessageAttributes=attrs)
            else:
                c.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
                    {"Id": str(i), "Message": body, "MessageAttributes": attrs} for i in range(batch)])

        def cleanup():
            sns.delete_topic(TopicArn=topic)
        service = "sns"
    else:
        events = boto3.client("events", **kw)
        events.create_event_bus(Name=name)
        events.put_rule(Name=name, EventBusName=name,
                        EventPattern=json.dumps({"detail-type": ["appointment.confirmed"]}))
        events.put_targets(Rule=name, EventBusName=name, Targets=[{"Id": "queue", "Arn": arn}])
        entry = {"Source": "cita.country.pe", "DetailType": "appointment.confirmed",
                 "Detail": body, "EventBusName": name}

        def send(c):
            c.put_events(Entries=[entry] * batch)

        def cleanup():
            events.remove_targets(Rule=name, EventBusName=name, Ids=["queue"])
            events.delete_rule(Name=name, EventBusName=name)
            events.delete_event_bus(Name=name)
        service = "events"
    received = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def consume():
        c = boto3.client("sqs", **kw)
        while not stop.is_set():
            got = c.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            if got:
                c.delete_message_batch(QueueUrl=queue, Entries=[
                    {"Id": str(i), "ReceiptHandle": msg["ReceiptHandle"]} for i, msg in enumerate(got)])
                with lock:
                    received[0] += len(got)
                    if received[0] >= m:
                        stop.set()

    def publish(k):
        c = getattr(local, "c", None) or boto3.client(service, **kw)
        local.c = c
        send(c)

    local = threading.local()
    consumers = [threading.Thread(target=consume) for _ in range(2)]
    t0 = time.time()
    for t in consumers:
        t.start()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(publish, range(m // batch)))
    published = time.time() - t0
    stop.wait(timeout=300)
    stop.set()
    for t in consumers:
        t.join()
    elapsed = time.time() - t0
    label = "ceiling" if hop == "sns" else f"hop={hop}"
    print(f"{label} messages={received[0]} publish_s={published:.2f} publish_to_receive_all_s={elapsed:.2f} "
          f"to_sqs_per_s={received[0] / elapsed:.1f}")
    cleanup()
    sqs.delete_queue(QueueUrl=queue)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "book":
        rate = float(sys.argv[6]) if len(sys.argv) > 6 else None
        book(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), rate)
    elif cmd == "measure":
        measure(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "ceiling":
        hop = sys.argv[5] if len(sys.argv) > 5 else "sns"
        if hop not in HOPS:
            sys.exit(f"unknown hop {hop}: one of {', '.join(HOPS)}")
        ceiling(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), hop)
    else:
        sys.exit(f"unknown command {cmd}")
