//! [`Status`] in binary frames. Its JSON form is tagged inside the object (`{"kind": ...}`),
//! which a format without field names cannot read back; here it is a plain enum. Variants
//! and trap kinds are encoded by position: new ones are only ever appended.

use crate::{Status, TrapKind};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
enum CompactStatus {
    Success,
    ExitCode(i32),
    Trap(TrapKind),
    FuelExhausted,
    MemoryLimit,
    OutputLimit,
    HostTimeout,
    InvalidModule(String),
}

pub fn serialize<S: Serializer>(status: &Status, serializer: S) -> Result<S::Ok, S::Error> {
    let compact = match status.clone() {
        Status::Success => CompactStatus::Success,
        Status::ExitCode { code } => CompactStatus::ExitCode(code),
        Status::Trap { trap } => CompactStatus::Trap(trap),
        Status::FuelExhausted => CompactStatus::FuelExhausted,
        Status::MemoryLimit => CompactStatus::MemoryLimit,
        Status::OutputLimit => CompactStatus::OutputLimit,
        Status::HostTimeout => CompactStatus::HostTimeout,
        Status::InvalidModule { reason } => CompactStatus::InvalidModule(reason),
    };
    compact.serialize(serializer)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Status, D::Error> {
    Ok(match CompactStatus::deserialize(deserializer)? {
        CompactStatus::Success => Status::Success,
        CompactStatus::ExitCode(code) => Status::ExitCode { code },
        CompactStatus::Trap(trap) => Status::Trap { trap },
        CompactStatus::FuelExhausted => Status::FuelExhausted,
        CompactStatus::MemoryLimit => Status::MemoryLimit,
        CompactStatus::OutputLimit => Status::OutputLimit,
        CompactStatus::HostTimeout => Status::HostTimeout,
        CompactStatus::InvalidModule(reason) => Status::InvalidModule { reason },
    })
}
