//! Which output a committee agreed on (sans-IO): the output and proof hash signed for the most
//! seats, published only if those seats reach the task's threshold. Members who signed
//! something else, or whose signature does not verify, are the dissent the task's record
//! reports. No single answer decides: a seat that lies about its output, or ran another
//! module, is outvoted, and one lie among too few honest seats publishes nothing.

use std::collections::BTreeMap;

/// A member's signed answer to a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub operator: [u8; 20],
    pub output: Vec<u8>,
    pub proof_hash: [u8; 32],
    pub signature: Vec<u8>,
    /// The signature verifies for this output, proof hash and operator.
    pub valid: bool,
}

/// The output to publish, the answers that sign it, and the operators who dissented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    pub output: Vec<u8>,
    pub proof_hash: [u8; 32],
    pub signers: Vec<Answer>,
    pub dissent: Vec<[u8; 20]>,
}

/// Why nothing can be published.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoAgreement {
    #[error("no member computed")]
    NoAnswers,
    #[error(
        "members disagree: the most seats behind one output are {best}, short of the threshold {threshold} ({} dissenting)",
        dissent.len()
    )]
    ShortOfThreshold {
        best: u32,
        threshold: u32,
        dissent: Vec<[u8; 20]>,
    },
}

/// The output most seats signed (ties go to the smaller output bytes, so every coordinator
/// picks the same), if its seats reach `threshold`. `seats` gives an operator's seats in the
/// task's committee.
pub fn agree(
    answers: Vec<Answer>,
    seats: impl Fn(&[u8; 20]) -> u32,
    threshold: u32,
) -> Result<Agreement, NoAgreement> {
    if answers.is_empty() {
        return Err(NoAgreement::NoAnswers);
    }
    let mut groups: BTreeMap<(Vec<u8>, [u8; 32]), Vec<Answer>> = BTreeMap::new();
    let mut invalid = Vec::new();
    // An operator answering twice is counted for neither answer.
    let mut answered = std::collections::HashMap::<[u8; 20], usize>::new();
    for a in &answers {
        *answered.entry(a.operator).or_default() += 1;
    }
    for answer in answers {
        if answered[&answer.operator] > 1 {
            if !invalid.contains(&answer.operator) {
                invalid.push(answer.operator);
            }
        } else if answer.valid {
            groups
                .entry((answer.output.clone(), answer.proof_hash))
                .or_default()
                .push(answer);
        } else {
            invalid.push(answer.operator);
        }
    }
    let weight = |group: &[Answer]| group.iter().map(|a| seats(&a.operator)).sum::<u32>();
    let best = groups
        .iter()
        .map(|(key, group)| (weight(group), key.clone()))
        .fold(
            None::<(u32, (Vec<u8>, [u8; 32]))>,
            |best, next| match best {
                Some(b) if b.0 >= next.0 => Some(b),
                _ => Some(next),
            },
        );
    let Some((best_seats, key)) = best else {
        return Err(NoAgreement::ShortOfThreshold {
            best: 0,
            threshold,
            dissent: invalid,
        });
    };
    let signers = groups.remove(&key).unwrap_or_default();
    let mut dissent = invalid;
    dissent.extend(groups.values().flatten().map(|a| a.operator));
    if best_seats < threshold {
        return Err(NoAgreement::ShortOfThreshold {
            best: best_seats,
            threshold,
            dissent,
        });
    }
    let (output, proof_hash) = key;
    Ok(Agreement {
        output,
        proof_hash,
        signers,
        dissent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(who: u8, output: &[u8]) -> Answer {
        Answer {
            operator: [who; 20],
            output: output.to_vec(),
            proof_hash: [0; 32],
            signature: vec![who],
            valid: true,
        }
    }

    #[test]
    fn one_lying_seat_is_outvoted_and_reported() {
        // The liar answers first: the first answer does not decide.
        let answers = vec![answer(1, b"lie"), answer(2, b"sum"), answer(3, b"sum")];
        let agreed = agree(answers, |_| 1, 2).unwrap();
        assert_eq!(agreed.output, b"sum");
        assert_eq!(agreed.signers.len(), 2);
        assert_eq!(agreed.dissent, vec![[1; 20]]);
    }

    #[test]
    fn seats_count_not_members() {
        // One member holding three seats outweighs two holding one each.
        let answers = vec![answer(1, b"a"), answer(2, b"b"), answer(3, b"b")];
        let seats = |o: &[u8; 20]| if o[0] == 1 { 3 } else { 1 };
        assert_eq!(agree(answers.clone(), seats, 3).unwrap().output, b"a");
        assert!(matches!(
            agree(answers, seats, 4),
            Err(NoAgreement::ShortOfThreshold { best: 3, .. })
        ));
    }

    #[test]
    fn too_few_honest_seats_publish_nothing() {
        let answers = vec![answer(1, b"lie"), answer(2, b"sum"), answer(3, b"sum")];
        match agree(answers, |_| 1, 3) {
            Err(NoAgreement::ShortOfThreshold {
                best: 2,
                threshold: 3,
                dissent,
            }) => assert_eq!(dissent, vec![[1; 20]]),
            other => panic!("{other:?}"),
        }
        assert_eq!(agree(Vec::new(), |_| 1, 1), Err(NoAgreement::NoAnswers));
    }

    #[test]
    fn an_operator_answering_twice_counts_for_neither() {
        let answers = vec![answer(1, b"lie"), answer(1, b"lie"), answer(2, b"sum")];
        let agreed = agree(answers, |_| 1, 1).unwrap();
        assert_eq!(agreed.output, b"sum");
        assert_eq!(agreed.dissent, vec![[1; 20]]);
    }

    #[test]
    fn a_bad_signature_counts_for_nothing() {
        let mut forged = answer(1, b"sum");
        forged.valid = false;
        let answers = vec![forged, answer(2, b"sum")];
        assert!(matches!(
            agree(answers.clone(), |_| 1, 2),
            Err(NoAgreement::ShortOfThreshold { best: 1, .. })
        ));
        let agreed = agree(answers, |_| 1, 1).unwrap();
        assert_eq!(agreed.dissent, vec![[1; 20]]);
        // Another proof hash is another answer.
        let mut other_proof = answer(3, b"sum");
        other_proof.proof_hash = [9; 32];
        let agreed = agree(vec![answer(2, b"sum"), other_proof], |_| 1, 1).unwrap();
        assert_eq!(agreed.signers.len(), 1);
        assert_eq!(agreed.dissent.len(), 1);
    }
}
