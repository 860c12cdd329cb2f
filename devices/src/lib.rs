//! smmsim's platform devices, each a plain state machine behind a small trait.
//!
//! A device never touches a core, a thread or guest memory. The simulator hands it one
//! access at a time together with an [`AccessContext`] (which CPU, whether that CPU is in
//! SMM, the current cycle) and the device answers with data plus [`Effect`]s — requests
//! such as "append this byte to the console" or "end the run with this status" that the
//! simulator then carries out. That keeps every device unit-testable through its
//! registers alone.
//!
//! The flow of one port access:
//! 1. a core executes `IN`/`OUT` (or a string form) and calls [`PortBus::read`] /
//!    [`PortBus::write`] with the port, the access width and its context;
//! 2. the bus finds the device whose window holds the port and passes it the offset into
//!    that window — a device never sees absolute port numbers;
//! 3. the device updates its state, returns read data and pushes effects;
//! 4. an access to a port no device claims reads all ones, drops writes, and is counted.

pub mod access;
pub mod apic_bus;
pub mod apm;
pub mod bus;
pub mod chipset;
pub mod cpu_hotplug;
pub mod debug_exit;
pub mod debugcon;
pub mod effect;
pub mod fw_cfg;
pub mod local_apic;
pub mod lpc;
pub mod mch;
pub mod pci;
pub mod pm;
pub mod post_code;
pub mod reset_control;
pub mod smbase_controller;
pub mod smi_features;

pub use access::{AccessContext, AccessWidth, ApicId, CpuIndex};
pub use apic_bus::{decode_icr, DeliveryMode, Destination, IcrError, Ipi};
pub use bus::{BusError, PortBus, PortDevice, UnmappedAccesses};
pub use chipset::{ChipsetError, ChipsetProfile, Q35Chipset, Q35Config};
pub use cpu_hotplug::{CpuHotplug, HotplugCommand, HotplugConfigError, HotplugError, OstRecord};
pub use effect::{Effect, SmiTarget};
pub use fw_cfg::{DmaError, DmaMemory, FwCfg, FwCfgCallbacks, FwCfgError, FwCfgFiles, NoCallbacks};
pub use local_apic::LocalApic;
pub use mch::{SmramLayout, SmramRange, SmramRegion};
pub use smbase_controller::{SmbaseController, SmbaseControllerError};
pub use smi_features::{SmiFeatureError, SmiFeatureSet, SmiNegotiation};
