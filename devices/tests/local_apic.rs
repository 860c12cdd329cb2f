//! Local APICs talking over a toy APIC bus, driven only through their registers: what the
//! simulator does with them, minus cores and time.

use smmsim_devices::local_apic::{
    MSR_ICR, MSR_ID, MSR_SELF_IPI, MSR_SVR, REG_EOI, REG_ICR_HIGH, REG_ICR_LOW, REG_ID,
    REG_ISR_FIRST, REG_SVR, SVR_APIC_ENABLE,
};
use smmsim_devices::{ApicId, DeliveryMode, Destination, Ipi, LocalApic};

/// A machine's APICs, with APIC ID = index as in smmsim's flat topology.
struct Bus {
    apics: Vec<LocalApic>,
    /// Every message delivered, as (target, IPI).
    delivered: Vec<(ApicId, Ipi)>,
}

impl Bus {
    fn new(cpus: u32) -> Bus {
        Bus {
            apics: (0..cpus).map(|id| LocalApic::new(ApicId(id))).collect(),
            delivered: Vec::new(),
        }
    }

    fn apic(&mut self, id: u32) -> &mut LocalApic {
        &mut self.apics[id as usize]
    }

    /// Hands `ipi` to every APIC its destination includes; fixed IPIs land in the IRR.
    fn deliver(&mut self, ipi: Ipi) {
        for apic in &mut self.apics {
            let target = apic.apic_id();
            if ipi.destination.includes(target, ipi.source) {
                if ipi.mode == DeliveryMode::Fixed {
                    apic.accept_fixed(ipi.vector);
                }
                self.delivered.push((target, ipi));
            }
        }
    }

    /// The xAPIC ICR sequence firmware uses: high dword, then low dword (which sends).
    fn send_xapic(&mut self, from: u32, high: u32, low: u32) -> Ipi {
        let apic = self.apic(from);
        assert_eq!(apic.mmio_write(REG_ICR_HIGH, high), None);
        let ipi = apic
            .mmio_write(REG_ICR_LOW, low)
            .expect("a valid ICR low write sends");
        self.deliver(ipi);
        ipi
    }

    fn targets(&self, mode: DeliveryMode) -> Vec<u32> {
        self.delivered
            .iter()
            .filter(|(_, ipi)| ipi.mode == mode)
            .map(|(target, _)| target.0)
            .collect()
    }
}

#[test]
fn bsp_wakes_every_ap_with_init_sipi_sipi_broadcast() {
    let mut bus = Bus::new(4);
    // edk2 SendInitSipiSipiAllExcludingSelf: INIT, then SIPI twice, shorthand 11.
    let init = bus.send_xapic(0, 0, 0x000C_4500);
    assert!(init.level_assert);
    bus.send_xapic(0, 0, 0x000C_4610);
    bus.send_xapic(0, 0, 0x000C_4610);
    assert_eq!(bus.targets(DeliveryMode::Init), [1, 2, 3]);
    assert_eq!(bus.targets(DeliveryMode::Startup), [1, 2, 3, 1, 2, 3]);
    assert!(bus.delivered.iter().all(
        |(_, ipi)| ipi.source == ApicId(0) && ipi.destination == Destination::AllExcludingSelf
    ));
    // The sender reads back what it wrote, with delivery status 0 ("idle").
    assert_eq!(bus.apic(0).mmio_read(REG_ICR_LOW), 0x000C_4610);
}

#[test]
fn directed_smi_reaches_only_its_target() {
    let mut bus = Bus::new(4);
    // The monarch (APIC 0) sends a directed SMI to APIC 2: ICR high = 2 << 24, low = 0x200.
    let ipi = bus.send_xapic(0, 0x0200_0000, 0x0000_4200);
    assert_eq!(ipi.mode, DeliveryMode::Smi);
    assert_eq!(bus.targets(DeliveryMode::Smi), [2]);
    // A broadcast SMI (destination 0xFF) reaches everyone, the sender too.
    bus.send_xapic(3, 0xFF00_0000, 0x0000_0200);
    assert_eq!(bus.targets(DeliveryMode::Smi), [2, 0, 1, 2, 3]);
}

#[test]
fn fixed_ipi_round_trip_through_irr_isr_and_eoi() {
    let mut bus = Bus::new(2);
    assert_eq!(
        bus.apic(1).mmio_write(REG_SVR, SVR_APIC_ENABLE | 0xFF),
        None
    );
    bus.send_xapic(0, 0x0100_0000, 0x0000_4041);
    let target = bus.apic(1);
    assert_eq!(target.pending_vector(), Some(0x41));
    assert_eq!(target.acknowledge(), Some(0x41));
    // Vector 0x41 is bit 1 of ISR register 2 (vectors 0x40–0x5F), at offset 0x120.
    assert_eq!(target.mmio_read(REG_ISR_FIRST + 0x20), 1 << 1);
    target.mmio_write(REG_EOI, 0);
    assert_eq!(target.mmio_read(REG_ISR_FIRST + 0x20), 0);
    assert_eq!(target.pending_vector(), None);
}

#[test]
fn init_resets_the_target_apic_but_keeps_its_id() {
    let mut bus = Bus::new(2);
    let ap = bus.apic(1);
    ap.mmio_write(REG_SVR, SVR_APIC_ENABLE | 0xFF);
    ap.accept_fixed(0x70);
    // What the core does on INIT.
    ap.reset();
    assert_eq!(ap.mmio_read(REG_SVR), 0xFF);
    assert_eq!(ap.mmio_read(REG_ID), 0x0100_0000);
    ap.mmio_write(REG_SVR, SVR_APIC_ENABLE | 0xFF);
    assert_eq!(ap.pending_vector(), None);
}

#[test]
fn x2apic_cpus_address_ids_above_255() {
    let mut bus = Bus::new(300);
    for apic in &mut bus.apics {
        apic.set_x2apic(true);
    }
    assert_eq!(bus.apic(299).msr_read(MSR_ID), Some(299));
    // xAPIC MMIO is gone; the MSRs answer instead.
    assert_eq!(bus.apic(299).mmio_read(REG_ID), 0);
    let ipi = bus
        .apic(0)
        .msr_write(MSR_ICR, (299 << 32) | 0x4500)
        .expect("a valid ICR write does not fault")
        .expect("and sends");
    bus.deliver(ipi);
    assert_eq!(bus.targets(DeliveryMode::Init), [299]);
    // 0xFF is an ordinary ID in x2APIC mode, not a broadcast.
    let ipi = bus
        .apic(0)
        .msr_write(MSR_ICR, (0xFF << 32) | 0x4200)
        .unwrap()
        .unwrap();
    bus.deliver(ipi);
    assert_eq!(bus.targets(DeliveryMode::Smi), [255]);
}

#[test]
fn x2apic_self_ipi_is_taken_by_the_sender() {
    let mut bus = Bus::new(2);
    let apic = bus.apic(1);
    apic.set_x2apic(true);
    apic.msr_write(MSR_SVR, 0x1FF).unwrap();
    let ipi = apic.msr_write(MSR_SELF_IPI, 0x99).unwrap().unwrap();
    bus.deliver(ipi);
    assert_eq!(bus.targets(DeliveryMode::Fixed), [1]);
    assert_eq!(bus.apic(1).acknowledge(), Some(0x99));
    assert_eq!(bus.apic(0).pending_vector(), None);
}

#[test]
fn bad_icr_writes_send_nothing_and_x2apic_msrs_fault_in_xapic_mode() {
    let mut apic = LocalApic::new(ApicId(0));
    // Logical destination mode, then reserved delivery mode 111.
    assert_eq!(apic.mmio_write(REG_ICR_LOW, 0x0000_4830), None);
    assert_eq!(apic.mmio_write(REG_ICR_LOW, 0x0000_4700), None);
    assert_eq!(apic.bad_icr_writes(), 2);
    assert_eq!(apic.msr_read(MSR_ID), None);
    assert_eq!(apic.msr_write(MSR_ICR, 0x4500), Err(()));
}
