use super::*;

/// A ticket as a partition delivers it.
#[derive(Clone)]
struct Ticket {
    partition: u32,
    id: String,
    at: i64,
    title: String,
}

/// Tickets of a few recurring calls, one a minute, spread over `partitions` by id.
fn desk(n: usize, partitions: u32) -> Vec<Ticket> {
    let calls = [
        "vpn connection drops every few minutes",
        "outlook keeps asking for my password",
        "printer on floor 3 is out of toner",
        "cannot access the shared drive finance",
        "laptop battery drains very fast",
        "new starter needs an AD account",
    ];
    let extra = ["today", "again", "urgent", "since monday", "please help"];
    (0..n)
        .map(|i| {
            let id = format!("INC{:05}", (i * 7919) % 100_000);
            Ticket {
                partition: (xxhash_rust::xxh3::xxh3_64(id.as_bytes()) % u64::from(partitions))
                    as u32,
                at: 1_700_000_000_000 + i as i64 * 60_000,
                title: format!(
                    "{} {}",
                    calls[(i * 5) % calls.len()],
                    extra[i % extra.len()]
                ),
                id,
            }
        })
        .collect()
}

/// Feeds the partitions' records in the order `pick` chooses among their next records,
/// releasing after each; the clusters by ticket id, with the catalog's ids.
fn run(
    tickets: &[Ticket],
    partitions: u32,
    mut pick: impl FnMut(&[usize]) -> u32,
) -> Vec<(String, u64)> {
    let mut order = TextOrder::new(Arc::new(TextSetup::default()));
    let by_part: Vec<Vec<&Ticket>> = (0..partitions)
        .map(|p| tickets.iter().filter(|t| t.partition == p).collect())
        .collect();
    for p in 0..partitions {
        order.add_partition(p);
    }
    let mut next = vec![0usize; partitions as usize];
    loop {
        let left: Vec<usize> = (0..partitions as usize)
            .map(|p| by_part[p].len() - next[p])
            .collect();
        if left.iter().all(|&l| l == 0) {
            break;
        }
        let p = pick(&left);
        let i = next[p as usize];
        let t = by_part[p as usize][i];
        order.push(p, i as u64, i, &t.id, t.at, &t.title, None);
        next[p as usize] += 1;
        if next[p as usize] == by_part[p as usize].len() {
            // Quiet once its tickets are read: a tick long after the last one.
            order.tick(p, i as u64 + 1, i64::MAX / 2);
        }
        order.release();
    }
    assert_eq!(order.waiting(), 0);
    assert_eq!(order.reordered(), 0);
    let catalog = order.catalog();
    let mut out = Vec::new();
    for (p, ts) in by_part.iter().enumerate() {
        let clusters = order.clusters_of(p as u32, 0..ts.len());
        for (t, c) in ts.iter().zip(clusters.iter()) {
            out.push((t.id.clone(), catalog.get(*c).expect("placed").id));
        }
    }
    out.sort();
    out
}

/// The reference: one state placing every ticket in creation order.
fn single(tickets: &[Ticket]) -> Vec<(String, u64)> {
    let mut sorted = tickets.to_vec();
    sorted.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    let mut text = TextState::new(Arc::new(TextSetup::default()));
    let placed: Vec<(String, u32)> = sorted
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                t.id.clone(),
                text.place(i, &t.id, t.at, &t.title, None, None),
            )
        })
        .collect();
    let catalog = text.catalog();
    let mut out: Vec<(String, u64)> = placed
        .into_iter()
        .map(|(id, c)| (id, catalog.get(c).unwrap().id))
        .collect();
    out.sort();
    out
}

#[test]
fn any_interleaving_of_the_partitions_gives_the_single_order_clusters() {
    let tickets = desk(600, 4);
    let reference = single(&tickets);
    // Round robin, one partition drained before the next, and a seeded random walk.
    let round = run(&tickets, 4, {
        let mut k = 0u32;
        move |left| loop {
            k = (k + 1) % 4;
            if left[k as usize] > 0 {
                return k;
            }
        }
    });
    let drained = run(&tickets, 4, |left| {
        left.iter().position(|&l| l > 0).unwrap() as u32
    });
    let random = run(&tickets, 4, {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        move |left| loop {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = (x % 4) as usize;
            if left[p] > 0 {
                return p as u32;
            }
        }
    });
    assert_eq!(round, reference);
    assert_eq!(drained, reference);
    assert_eq!(random, reference);
    let distinct: BTreeSet<u64> = reference.iter().map(|(_, c)| *c).collect();
    assert!(distinct.len() >= 3 && distinct.len() < 100, "{distinct:?}");
}

#[test]
fn a_partition_behind_holds_the_others_until_it_passes_or_ticks() {
    let setup = Arc::new(TextSetup::default());
    let mut order = TextOrder::new(setup);
    order.add_partition(0);
    order.add_partition(1);
    order.push(0, 0, 0, "A1", 1_000, "vpn drops", None);
    order.push(0, 1, 1, "A2", 2_000, "vpn drops again", None);
    // Partition 1 has delivered nothing: nothing can be placed.
    assert_eq!(order.release(), 0);
    assert_eq!(order.waiting(), 2);
    order.push(1, 0, 0, "B1", 1_500, "printer toner", None);
    // Partition 1 is at 1.5 s: A1 (1 s) goes; B1 and A2 could still be preceded.
    assert_eq!(order.release(), 1);
    assert_eq!(order.clusters_of(0, 0..2)[1], u32::MAX);
    // Partition 1 ticks: nothing created before the tick less the grace will come from it.
    order.tick(1, 1, 2_001 + GRACE_MS);
    assert_eq!(
        order.release(),
        1,
        "B1 only: A2 is not yet past partition 0"
    );
    order.tick(0, 2, 2_002 + GRACE_MS);
    assert_eq!(order.release(), 1);
    assert_eq!(order.waiting(), 0);
    assert_eq!(order.take_changed(0), BTreeSet::from([0, 1]));
    assert!(order.take_changed(0).is_empty());
    // A ticket created before its partition's horizon takes its place at the horizon.
    order.push(1, 2, 1, "B0", 500, "printer toner empty", None);
    assert_eq!(order.reordered(), 1);
    assert_eq!(
        order.release(),
        0,
        "partition 1 may still deliver more at B0's place"
    );
    order.tick(1, 3, 3_000 + GRACE_MS);
    assert_eq!(order.release(), 1);
    assert_ne!(order.clusters_of(1, 1..2)[0], u32::MAX);
    // A record read again changes nothing.
    order.push(1, 2, 1, "B0", 500, "printer toner empty", None);
    assert_eq!(order.reordered(), 1);
    assert_eq!(order.tickets(1), 2);
    assert_eq!(order.fed(1), 4);
}

#[test]
fn a_saved_order_continues_like_one_never_stopped() {
    let tickets = desk(300, 3);
    let setup = Arc::new(TextSetup::default());
    let feed = |order: &mut TextOrder, range: std::ops::Range<usize>| {
        for t in &tickets[range] {
            let i = order.tickets(t.partition);
            order.push(t.partition, i as u64, i, &t.id, t.at, &t.title, None);
            order.release();
        }
    };
    let mut whole = TextOrder::new(setup.clone());
    let mut stopped = TextOrder::new(setup.clone());
    for p in 0..3 {
        whole.add_partition(p);
        stopped.add_partition(p);
    }
    feed(&mut whole, 0..300);
    feed(&mut stopped, 0..150);
    let bytes = postcard::to_stdvec(&stopped).unwrap();
    let mut restored: TextOrder = postcard::from_bytes(&bytes).unwrap();
    restored.attach(setup.clone()).unwrap();
    assert!(restored.waiting() > 0, "saved with tickets waiting");
    feed(&mut restored, 150..300);
    for p in 0..3 {
        let n = whole.tickets(p);
        assert_eq!(restored.clusters_of(p, 0..n), whole.clusters_of(p, 0..n));
        assert_eq!(restored.fed(p), whole.fed(p));
    }
    // Other settings: the saved order is not used.
    let other = Arc::new(TextSetup::new(0.9, Default::default()));
    let mut again: TextOrder = postcard::from_bytes(&bytes).unwrap();
    assert!(again.attach(other).is_err());
}
