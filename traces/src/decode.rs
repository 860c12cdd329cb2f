//! Decoding one event from a chunk payload, by hand, byte for byte as bincode's derived
//! `Decode` does it.
//!
//! `trace stats` has to get through tens of millions of events a second. Going through
//! bincode's generic decoder costs an out-of-line call per integer plus a decoder set-up per
//! event, which alone kept the reader near 20 million events a second; this module reads
//! the same bytes with inlined varints and reaches about three times that. The writer still
//! encodes with bincode, so the wire format has one definition; this decoder must accept
//! exactly what bincode accepts, and a property test in this file checks it against bincode
//! on valid encodings and on garbage.
//!
//! The encoding (bincode 2, `config::standard()`, little-endian varints):
//! 1. `u8` and `bool` are one byte (a `bool` other than 0 or 1 is an error);
//! 2. `u16`/`u32`/`u64` are a byte below 251 for small values, else a marker byte —
//!    251: a `u16` follows, 252: a `u32`, 253: a `u64` — and a marker too wide for the
//!    type is an error;
//! 3. an enum is its variant index as a `u32` varint, then its fields in declaration order;
//!    `Option` is a byte 0 (none) or 1 (some, then the value);
//! 4. a `String` is its byte length as a `u64` varint, then UTF-8 bytes.
//!
//! bincode also counts a "claimed" size (the in-memory size of each integer, and each
//! string's length) against the configured limit, [`MAX_RECORD_BYTES`]; the decoder does
//! the same so that an oversized event is refused by both. Only events with strings can
//! come near the limit (the others claim under 40 bytes), so only they keep the count.

use bincode::error::{AllowedEnumVariants, DecodeError, IntegerType};

use crate::event::{Event, EventKind, SmiSource};
use crate::format::MAX_RECORD_BYTES;
use crate::time::Cycle;

/// Largest value stored in the varint's first byte itself.
const SINGLE_BYTE_MAX: u8 = 250;
/// Marker: a little-endian `u16` follows.
const U16_MARKER: u8 = 251;
/// Marker: a little-endian `u32` follows.
const U32_MARKER: u8 = 252;
/// Marker: a little-endian `u64` follows.
const U64_MARKER: u8 = 253;
/// Marker: a little-endian `u128` follows (never valid for the types events use).
const U128_MARKER: u8 = 254;

/// The allowed variant indices of [`EventKind`], for the error bincode would give.
static EVENT_KIND_VARIANTS: AllowedEnumVariants = AllowedEnumVariants::Range {
    min: 0,
    max: EventKind::NAMES.len() as u32 - 1,
};
/// The allowed variant indices of [`SmiSource`].
static SMI_SOURCE_VARIANTS: AllowedEnumVariants = AllowedEnumVariants::Range { min: 0, max: 2 };
/// The allowed tags of an `Option`.
static OPTION_VARIANTS: AllowedEnumVariants = AllowedEnumVariants::Range { min: 0, max: 1 };

/// Where [`decode_event_with`] hands a decoded event.
///
/// A trait rather than a closure so implementations can be marked `#[inline(always)]`: the
/// hand-off happens in each of the twenty variant arms, and only a forced inline puts a
/// copy of the consumer into every arm (see [`decode_event_with`] for why that matters).
pub(crate) trait Sink {
    /// What the sink gives back for one event.
    type Output;
    /// Takes one decoded event.
    fn take(&mut self, event: Event) -> Self::Output;
}

/// The sink that keeps the event, for callers that want it by value.
struct Keep;

impl Sink for Keep {
    type Output = Event;

    #[inline(always)]
    fn take(&mut self, event: Event) -> Event {
        event
    }
}

/// Decodes one event from the start of `bytes`; returns it and the bytes it used.
///
/// Accepts and refuses exactly what `bincode::decode_from_slice::<Event>` with the trace's
/// configuration does, and gives back the same value and length.
#[inline]
pub(crate) fn decode_event(bytes: &[u8]) -> Result<(Event, usize), DecodeError> {
    decode_event_with(bytes, &mut Keep)
}

/// Decodes one event from the start of `bytes` and hands it to `sink`; returns what the
/// sink returned and the bytes the event used. The sink sees nothing of bytes that do not
/// decode.
///
/// Why the hand-off instead of returning the event: the sink is called from inside each
/// variant's arm, so once inlined, a consumer's own `match` on the kind is settled at
/// compile time in every arm. On a trace whose kinds follow no pattern, the variant
/// dispatch is the one branch a CPU mispredicts per event; this way it is taken once
/// instead of twice (decoder, then consumer).
#[inline(always)]
pub(crate) fn decode_event_with<S: Sink>(
    bytes: &[u8],
    sink: &mut S,
) -> Result<(S::Output, usize), DecodeError> {
    let mut input = Input {
        bytes,
        pos: 0,
        string_claims: 0,
        error: None,
    };
    let cycle = Cycle(input.u64());
    let cpu = input.u32();
    let input = &mut input;
    // Builds the event from the arm's kind and hands it on, from inside the arm.
    macro_rules! finish {
        ($kind:expr) => {{
            let kind = $kind;
            return match input.error.take() {
                None => {
                    let used = input.pos;
                    Ok((sink.take(Event { cycle, cpu, kind }), used))
                }
                Some(error) => Err(error),
            };
        }};
    }
    match input.u32() {
        0 => finish!(EventKind::SmiRaised {
            source: decode_smi_source(input),
        }),
        1 => finish!(EventKind::SmmEntry {
            smbase: input.u64(),
            save_area: input.u64(),
        }),
        2 => finish!(EventKind::Rsm {
            old_smbase: input.u64(),
            new_smbase: input.u64(),
        }),
        3 => finish!(EventKind::SmbaseRelocated {
            old: input.u64(),
            new: input.u64(),
        }),
        4 => finish!(EventKind::IpiSent {
            mode: input.u8(),
            destination: input.u32(),
        }),
        5 => finish!(EventKind::IpiDelivered {
            mode: input.u8(),
            source: input.u32(),
        }),
        6 => finish!(EventKind::Init),
        7 => finish!(EventKind::Sipi { vector: input.u8() }),
        8 => finish!(EventKind::Halt),
        9 => finish!(EventKind::Wake),
        10 => finish!(EventKind::HotAdd {
            apic_id: input.u32(),
        }),
        11 => finish!(EventKind::HotRemove {
            apic_id: input.u32(),
        }),
        12 => finish!(EventKind::Reset { hard: input.bool() }),
        13 => finish!(EventKind::SmramBlocked {
            address: input.u64(),
            write: input.bool(),
        }),
        14 => {
            let text = input.string();
            input.check_limit(0);
            finish!(EventKind::ConsoleLine { text })
        }
        15 => finish!(EventKind::RunEnd {
            status: input.u32(),
        }),
        16 => finish!(EventKind::CpuEjected {
            apic_id: input.u32(),
        }),
        17 => finish!(EventKind::ControllerWriteBlocked {
            offset: input.u16(),
            value: input.u32(),
            locked: input.bool(),
        }),
        18 => {
            let check = input.string();
            let detail = input.string();
            let address = input.u64();
            let other_cpu = input.option_tag().then(|| input.u32());
            // Claims after the strings: the address, the option tag and its value.
            let after = 8 + 1 + if other_cpu.is_some() { 4 } else { 0 };
            input.check_limit(after);
            finish!(EventKind::Violation {
                check,
                detail,
                address,
                other_cpu,
            })
        }
        19 => finish!(EventKind::Instruction {
            rip: input.u64(),
            cs: input.u16(),
        }),
        found => {
            input.fail(DecodeError::UnexpectedVariant {
                type_name: "EventKind",
                allowed: &EVENT_KIND_VARIANTS,
                found,
            });
            finish!(EventKind::Init)
        }
    }
}

/// Decodes a [`SmiSource`].
#[inline(always)]
fn decode_smi_source(input: &mut Input<'_>) -> SmiSource {
    match input.u32() {
        0 => SmiSource::ApmPort,
        1 => SmiSource::Ipi,
        2 => SmiSource::Platform,
        found => {
            input.fail(DecodeError::UnexpectedVariant {
                type_name: "SmiSource",
                allowed: &SMI_SOURCE_VARIANTS,
                found,
            });
            SmiSource::Platform
        }
    }
}

/// The bytes of one event and how far decoding has got.
///
/// Reads never return `Result`: a failed read records the first error and yields zero,
/// and [`decode_event`] checks once at the end. That keeps the common path a straight line
/// of loads and compares, instead of a branch and a `Result` re-packing after every field.
struct Input<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// What bincode would have claimed against its limit for the strings read so far
    /// (their length prefixes and bytes).
    string_claims: usize,
    /// The first error met; later reads change nothing once it is set.
    error: Option<DecodeError>,
}

impl Input<'_> {
    /// Records `error` unless an earlier one is already recorded.
    #[cold]
    fn fail(&mut self, error: DecodeError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// The next `N` bytes, or zeros and the error bincode's slice reader gives at the end.
    #[inline(always)]
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let rest = self.bytes.get(self.pos..).unwrap_or(&[]);
        match rest.get(..N) {
            Some(taken) => {
                let mut out = [0u8; N];
                out.copy_from_slice(taken);
                self.pos += N;
                out
            }
            None => {
                self.fail(DecodeError::UnexpectedEnd {
                    additional: N - rest.len(),
                });
                [0; N]
            }
        }
    }

    #[inline(always)]
    fn byte(&mut self) -> u8 {
        match self.bytes.get(self.pos) {
            Some(&byte) => {
                self.pos += 1;
                byte
            }
            None => {
                self.fail(DecodeError::UnexpectedEnd { additional: 1 });
                0
            }
        }
    }

    #[inline(always)]
    fn u8(&mut self) -> u8 {
        self.byte()
    }

    #[inline(always)]
    fn bool(&mut self) -> bool {
        match self.u8() {
            0 => false,
            1 => true,
            other => {
                self.fail(DecodeError::InvalidBooleanValue(other));
                false
            }
        }
    }

    /// The tag of an `Option`: false for none, true for some.
    #[inline(always)]
    fn option_tag(&mut self) -> bool {
        match self.u8() {
            0 => false,
            1 => true,
            found => {
                self.fail(DecodeError::UnexpectedVariant {
                    type_name: "Option",
                    allowed: &OPTION_VARIANTS,
                    found: u32::from(found),
                });
                false
            }
        }
    }

    #[inline(always)]
    fn u16(&mut self) -> u16 {
        match self.byte() {
            small @ 0..=SINGLE_BYTE_MAX => u16::from(small),
            U16_MARKER => u16::from_le_bytes(self.array()),
            marker => {
                self.fail(too_wide(IntegerType::U16, marker));
                0
            }
        }
    }

    #[inline(always)]
    fn u32(&mut self) -> u32 {
        match self.byte() {
            small @ 0..=SINGLE_BYTE_MAX => u32::from(small),
            U16_MARKER => u32::from(u16::from_le_bytes(self.array())),
            U32_MARKER => u32::from_le_bytes(self.array()),
            marker => {
                self.fail(too_wide(IntegerType::U32, marker));
                0
            }
        }
    }

    #[inline(always)]
    fn u64(&mut self) -> u64 {
        match self.byte() {
            small @ 0..=SINGLE_BYTE_MAX => u64::from(small),
            U16_MARKER => u64::from(u16::from_le_bytes(self.array())),
            U32_MARKER => u64::from(u32::from_le_bytes(self.array())),
            U64_MARKER => u64::from_le_bytes(self.array()),
            marker => {
                self.fail(too_wide(IntegerType::U64, marker));
                0
            }
        }
    }

    /// A length-prefixed UTF-8 string; the length is checked against the limit and the
    /// bytes present before anything is allocated. Empty once an error is recorded.
    fn string(&mut self) -> String {
        let length = self.u64();
        if self.error.is_some() {
            return String::new();
        }
        let Ok(length) = usize::try_from(length) else {
            self.fail(DecodeError::OutsideUsizeRange(length));
            return String::new();
        };
        // The length prefix is claimed as a u64, then the bytes.
        self.string_claims = self.string_claims.saturating_add(8).saturating_add(length);
        self.check_limit(0);
        if self.error.is_some() {
            return String::new();
        }
        let rest = self.bytes.get(self.pos..).unwrap_or(&[]);
        let Some(raw) = rest.get(..length) else {
            self.fail(DecodeError::UnexpectedEnd {
                additional: length - rest.len(),
            });
            return String::new();
        };
        match std::str::from_utf8(raw) {
            Ok(text) => {
                self.pos += length;
                text.to_owned()
            }
            Err(inner) => {
                self.fail(DecodeError::Utf8 { inner });
                String::new()
            }
        }
    }

    /// Records bincode's limit error if the claims so far, plus `after` claimed after the
    /// last string, pass [`MAX_RECORD_BYTES`]. Only called for events with strings.
    fn check_limit(&mut self, after: usize) {
        // Before the strings: the cycle (u64), the CPU (u32) and the variant index (u32).
        const BEFORE_STRINGS: usize = 8 + 4 + 4;
        let total = self
            .string_claims
            .saturating_add(BEFORE_STRINGS)
            .saturating_add(after);
        if total > MAX_RECORD_BYTES {
            self.fail(DecodeError::LimitExceeded);
        }
    }
}

/// The error for a varint whose marker announces a wider integer than the field holds.
#[cold]
fn too_wide(expected: IntegerType, marker: u8) -> DecodeError {
    let found = match marker {
        U32_MARKER => IntegerType::U32,
        U64_MARKER => IntegerType::U64,
        U128_MARKER => IntegerType::U128,
        _ => IntegerType::Reserved,
    };
    DecodeError::InvalidIntegerType { expected, found }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::format::bincode_config;

    fn bincode_decode(bytes: &[u8]) -> Result<(Event, usize), DecodeError> {
        bincode::decode_from_slice(bytes, bincode_config())
    }

    fn encode(event: &Event) -> Vec<u8> {
        bincode::encode_to_vec(event, bincode_config()).expect("events encode")
    }

    /// Integers near every varint boundary, where a decoder is most likely to slip.
    fn edgy_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(250),
            Just(251),
            Just(0xFFFF),
            Just(0x1_0000),
            Just(0xFFFF_FFFF),
            Just(0x1_0000_0000),
            Just(u64::MAX),
            any::<u64>(),
        ]
    }

    fn kind() -> impl Strategy<Value = EventKind> {
        let source = prop_oneof![
            Just(SmiSource::ApmPort),
            Just(SmiSource::Ipi),
            Just(SmiSource::Platform)
        ];
        prop_oneof![
            source.prop_map(|source| EventKind::SmiRaised { source }),
            (edgy_u64(), edgy_u64())
                .prop_map(|(smbase, save_area)| EventKind::SmmEntry { smbase, save_area }),
            (edgy_u64(), edgy_u64()).prop_map(|(old_smbase, new_smbase)| EventKind::Rsm {
                old_smbase,
                new_smbase
            }),
            (edgy_u64(), edgy_u64()).prop_map(|(old, new)| EventKind::SmbaseRelocated { old, new }),
            (any::<u8>(), edgy_u64()).prop_map(|(mode, d)| EventKind::IpiSent {
                mode,
                destination: d as u32
            }),
            (any::<u8>(), edgy_u64()).prop_map(|(mode, s)| EventKind::IpiDelivered {
                mode,
                source: s as u32
            }),
            Just(EventKind::Init),
            any::<u8>().prop_map(|vector| EventKind::Sipi { vector }),
            Just(EventKind::Halt),
            Just(EventKind::Wake),
            edgy_u64().prop_map(|a| EventKind::HotAdd { apic_id: a as u32 }),
            edgy_u64().prop_map(|a| EventKind::HotRemove { apic_id: a as u32 }),
            any::<bool>().prop_map(|hard| EventKind::Reset { hard }),
            (edgy_u64(), any::<bool>())
                .prop_map(|(address, write)| EventKind::SmramBlocked { address, write }),
            ".{0,300}".prop_map(|text| EventKind::ConsoleLine { text }),
            edgy_u64().prop_map(|s| EventKind::RunEnd { status: s as u32 }),
            edgy_u64().prop_map(|a| EventKind::CpuEjected { apic_id: a as u32 }),
            (edgy_u64(), edgy_u64(), any::<bool>()).prop_map(|(offset, value, locked)| {
                EventKind::ControllerWriteBlocked {
                    offset: offset as u16,
                    value: value as u32,
                    locked,
                }
            }),
            (".{0,20}", ".{0,40}", edgy_u64(), any::<Option<u32>>()).prop_map(
                |(check, detail, address, other_cpu)| EventKind::Violation {
                    check,
                    detail,
                    address,
                    other_cpu,
                }
            ),
            (edgy_u64(), edgy_u64())
                .prop_map(|(rip, cs)| EventKind::Instruction { rip, cs: cs as u16 }),
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        (edgy_u64(), edgy_u64(), kind()).prop_map(|(cycle, cpu, kind)| Event {
            cycle: Cycle(cycle),
            cpu: cpu as u32,
            kind,
        })
    }

    /// Both decoders agree: same value and length, or both refuse.
    fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
        match (decode_event(bytes), bincode_decode(bytes)) {
            (Ok(ours), Ok(theirs)) => prop_assert_eq!(ours, theirs),
            (Err(_), Err(_)) => {}
            (ours, theirs) => {
                prop_assert!(
                    false,
                    "{:?} vs bincode {:?} on {:02x?}",
                    ours,
                    theirs,
                    bytes
                )
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn decodes_what_bincode_encodes(event in event()) {
            let bytes = encode(&event);
            prop_assert_eq!(decode_event(&bytes).unwrap(), (event, bytes.len()));
            for cut in 0..bytes.len() {
                prop_assert!(decode_event(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn agrees_with_bincode_on_damaged_encodings(
            event in event(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = encode(&event);
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            agree(&bytes)?;
        }

        #[test]
        fn agrees_with_bincode_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            agree(&bytes)?;
        }

        #[test]
        fn agrees_with_bincode_on_garbage_after_a_valid_kind_index(
            cycle in edgy_u64(),
            index in 0u8..22,
            tail in prop::collection::vec(any::<u8>(), 0..30),
        ) {
            let mut bytes = encode(&Event { cycle: Cycle(cycle), cpu: 1, kind: EventKind::Init });
            bytes.pop();
            bytes.push(index);
            bytes.extend(tail);
            agree(&bytes)?;
        }
    }

    #[test]
    fn an_oversized_string_is_refused_by_both_before_allocating() {
        let mut bytes = encode(&Event {
            cycle: Cycle(1),
            cpu: 0,
            kind: EventKind::ConsoleLine { text: "x".into() },
        });
        // Replace the one-byte length 1 with a u64 length far beyond the limit.
        let length_at = bytes.len() - 2;
        bytes.truncate(length_at);
        bytes.push(U64_MARKER);
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(
            decode_event(&bytes),
            Err(DecodeError::LimitExceeded)
        ));
        assert!(bincode_decode(&bytes).is_err());
    }

    #[test]
    fn a_string_just_over_the_limit_is_refused_like_bincode_does() {
        for text_len in [
            MAX_RECORD_BYTES - 40,
            MAX_RECORD_BYTES - 20,
            MAX_RECORD_BYTES,
        ] {
            let event = Event {
                cycle: Cycle(1),
                cpu: 0,
                kind: EventKind::Violation {
                    check: "c".into(),
                    detail: "d".repeat(text_len),
                    address: 5,
                    other_cpu: Some(3),
                },
            };
            let bytes = bincode::encode_to_vec(&event, bincode::config::standard()).unwrap();
            assert_eq!(
                decode_event(&bytes).is_ok(),
                bincode_decode(&bytes).is_ok(),
                "text of {text_len} bytes"
            );
        }
    }
}
