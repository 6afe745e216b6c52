//! The three-moons generator: periods, ranges, the target shift, the triples, determinism.

use mosaic_data::three_moons::{
    DIM, MoonSampler, STEPS_PER_UNIT, TRAIN_TRIPLES, VAL_TRIPLE, in_steps, joint_period,
    observation,
};

#[test]
fn periods_in_steps() {
    assert!((STEPS_PER_UNIT - 44.4444).abs() < 1e-3);
    assert!((in_steps(1.0) - 44.444).abs() < 1e-3);
    assert!((in_steps(joint_period(&VAL_TRIPLE)) - 266.667).abs() < 1e-3);
    // Three joint periods of the validation triple are exactly 800 steps: the system repeats.
    for t in [0, 17, 333] {
        let (a, b) = (
            observation(t, &VAL_TRIPLE),
            observation(t + 800, &VAL_TRIPLE),
        );
        assert!(
            a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4),
            "{a:?} {b:?}"
        );
    }
    // ... but not after one moon's period alone: only that moon's pair repeats.
    let (a, b) = (
        observation(0, &[1.0, 2.0, 3.0]),
        observation(400, &[1.0, 2.0, 3.0]),
    );
    assert!(
        (a[0] - b[0]).abs() < 1e-4 && (a[1] - b[1]).abs() < 1e-4,
        "moon 1 (period 1) repeats after 9 units"
    );
    assert!(
        (a[2] - b[2]).abs() > 0.1,
        "moon 2 (period 2) does not: 4.5 turns"
    );
}

#[test]
fn observations_lie_on_unit_circles() {
    for t in (0..10_000).step_by(37) {
        let x = observation(t, &TRAIN_TRIPLES[3]);
        for m in 0..3 {
            let r = x[2 * m].powi(2) + x[2 * m + 1].powi(2);
            assert!((r - 1.0).abs() < 1e-5);
        }
        assert!(x.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
    // The phase offset: at t = 0 every moon is at angle 0.3.
    let x = observation(0, &VAL_TRIPLE);
    assert!((x[0] - 0.3f32.sin()).abs() < 1e-6 && (x[1] - 0.3f32.cos()).abs() < 1e-6);
}

#[test]
fn the_triples_are_the_nine_with_the_smallest_joint_period() {
    let values = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5];
    let mut all = Vec::new();
    for i in 0..7 {
        for j in i + 1..7 {
            for k in j + 1..7 {
                all.push([values[i], values[j], values[k]]);
            }
        }
    }
    assert_eq!(all.len(), 35);
    let mut periods: Vec<f64> = all.iter().map(|t| joint_period(t)).collect();
    periods.sort_by(f64::total_cmp);
    let ninth = periods[8];
    let chosen: Vec<[f64; 3]> = TRAIN_TRIPLES.iter().copied().chain([VAL_TRIPLE]).collect();
    for t in &chosen {
        assert!(
            joint_period(t) <= ninth,
            "{t:?} has joint period {}",
            joint_period(t)
        );
    }
    assert_eq!(joint_period(&VAL_TRIPLE), 6.0);
    assert_eq!(
        ninth, 6.0,
        "the validation triple is among the longest selected"
    );
}

#[test]
fn targets_are_inputs_shifted_by_one_and_seeded() {
    let mut s = MoonSampler::new(&TRAIN_TRIPLES, 50, 9);
    let batch = s.next_batch(4);
    assert_eq!(batch.inputs.len(), 4 * 50 * DIM);
    for b in 0..4 {
        let x = &batch.inputs[b * 50 * DIM..(b + 1) * 50 * DIM];
        let y = &batch.targets[b * 50 * DIM..(b + 1) * 50 * DIM];
        assert_eq!(&x[DIM..], &y[..49 * DIM]);
    }
    let again = MoonSampler::new(&TRAIN_TRIPLES, 50, 9).next_batch(4);
    assert_eq!(batch, again);
    assert_ne!(
        batch,
        MoonSampler::new(&TRAIN_TRIPLES, 50, 10).next_batch(4)
    );
}
