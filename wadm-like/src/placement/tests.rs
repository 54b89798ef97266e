use super::*;

fn hosts(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(h, n)| (h.to_string(), *n)).collect()
}

#[test]
fn apportions_by_largest_remainder() {
    assert_eq!(apportion(5, &[80, 20]), [4, 1]);
    assert_eq!(apportion(10, &[1, 1, 1]), [4, 3, 3]);
    assert_eq!(apportion(3, &[100, 100]), [2, 1]);
    // 7 × (50, 30, 20) = 3.5, 2.1, 1.4 → floors 3, 2, 1 and the unit left goes to .5
    assert_eq!(apportion(7, &[50, 30, 20]), [4, 2, 1]);
    assert_eq!(apportion(2, &[0, 5, 0]), [0, 2, 0]);
    assert_eq!(apportion(4, &[0, 0]), [0, 0]);
    assert_eq!(apportion(0, &[3, 1]), [0, 0]);
    assert!(apportion(4, &[]).is_empty());
}

#[test]
fn apportionment_always_sums_exactly() {
    let weight_sets: [&[u32]; 6] = [
        &[1],
        &[1, 2, 3],
        &[7, 11, 13, 17],
        &[1_000_000, 1, 1],
        &[100, 0, 100, 33],
        &[999_999, 999_999, 999_999],
    ];
    for weights in weight_sets {
        for total in [0, 1, 2, 5, 9, 99, 100_000] {
            let parts = apportion(total, weights);
            assert_eq!(
                parts.iter().sum::<u32>(),
                total,
                "{total} over {weights:?}: {parts:?}"
            );
            // Each part is within one of its exact quota.
            let sum: f64 = weights.iter().map(|w| f64::from(*w)).sum();
            for (p, w) in parts.iter().zip(weights) {
                let quota = f64::from(total) * f64::from(*w) / sum;
                assert!(
                    (f64::from(*p) - quota).abs() < 1.0,
                    "{parts:?} vs quota {quota}"
                );
            }
        }
    }
}

#[test]
fn spreads_evenly_and_deterministically() {
    let three = hosts(&["h1", "h2", "h3"]);
    let (placed, unplaced) = spread_evenly(7, &three, &BTreeMap::new(), None);
    assert_eq!(placed, counts(&[("h1", 3), ("h2", 2), ("h3", 2)]));
    assert_eq!(unplaced, 0);
    let (placed, _) = spread_evenly(2, &three, &BTreeMap::new(), None);
    assert_eq!(placed, counts(&[("h1", 1), ("h2", 1)]));
    let (placed, unplaced) = spread_evenly(4, &[], &BTreeMap::new(), None);
    assert!(placed.is_empty());
    assert_eq!(unplaced, 4);
}

#[test]
fn remainder_prefers_hosts_already_running() {
    let three = hosts(&["h1", "h2", "h3"]);
    // h3 already holds the extra replica: it keeps it, nothing moves.
    let current = counts(&[("h1", 2), ("h2", 2), ("h3", 3)]);
    let (placed, _) = spread_evenly(7, &three, &current, None);
    assert_eq!(placed, current);
    // A fourth host joins: only the surplus of the fullest hosts moves to it.
    let four = hosts(&["h1", "h2", "h3", "h4"]);
    let (placed, _) = spread_evenly(7, &four, &current, None);
    assert_eq!(
        placed,
        counts(&[("h1", 2), ("h2", 2), ("h3", 2), ("h4", 1)])
    );
    // Scaling 2 over three hosts keeps the two that run it.
    let current = counts(&[("h2", 1), ("h3", 1)]);
    let (placed, _) = spread_evenly(2, &three, &current, None);
    assert_eq!(placed, current);
}

#[test]
fn caps_per_host() {
    let three = hosts(&["h1", "h2", "h3"]);
    let (placed, unplaced) = spread_evenly(5, &three, &BTreeMap::new(), Some(1));
    assert_eq!(placed, counts(&[("h1", 1), ("h2", 1), ("h3", 1)]));
    assert_eq!(unplaced, 2);
}

#[test]
fn formats_labels() {
    let labels: Labels = [("tier", "edge"), ("zone", "a")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(format_labels(&labels), "{tier=edge, zone=a}");
}

#[test]
fn salted_ties_differ_between_components_but_not_between_runs() {
    let three = hosts(&["h1", "h2", "h3"]);
    let none = BTreeMap::new();
    let mut idle: std::collections::BTreeSet<String> = Default::default();
    for i in 0..20 {
        let salt = format!("app-c{i}");
        let (placed, _) = spread_evenly_salted(2, &three, &none, None, &salt);
        assert_eq!(placed.values().sum::<u32>(), 2);
        assert_eq!(
            spread_evenly_salted(2, &three, &none, None, &salt).0,
            placed,
            "deterministic"
        );
        idle.extend(three.iter().filter(|h| !placed.contains_key(*h)).cloned());
    }
    // Twenty components of 2 replicas on 3 hosts leave different hosts idle.
    assert_eq!(idle.len(), 3, "{idle:?}");
    // Hosts already running replicas still win over the hash: nothing moves.
    let current = counts(&[("h2", 1), ("h3", 1)]);
    let (placed, _) = spread_evenly_salted(2, &three, &current, None, "app-c0");
    assert_eq!(placed, current);
}
