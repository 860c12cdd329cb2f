//! SMI feature negotiation end to end, as OVMF's `SmiFeatures.c` does it: find the three
//! files in the fw_cfg directory, read what is supported, write the request with a DMA
//! WRITE, select `features-ok` with a DMA SELECT|READ, and see what an APM write does next.

mod common;

use common::Ram;
use smmsim_devices::{
    AccessContext, AccessWidth, DmaMemory, Effect, FwCfg, Q35Chipset, Q35Config, SmiFeatureError,
    SmiFeatureSet, SmiNegotiation, SmiTarget,
};
use smmsim_traces::Cycle;

const DESCRIPTOR: u64 = 0x1000;
const BUFFER: u64 = 0x2000;
const B: u64 = SmiFeatureSet::BROADCAST.bits();
const P: u64 = SmiFeatureSet::CPU_HOTPLUG.bits();
const U: u64 = SmiFeatureSet::CPU_HOT_UNPLUG.bits();

struct Firmware {
    chipset: Q35Chipset,
    ram: Ram,
}

impl Firmware {
    fn boot(supported: SmiFeatureSet) -> Firmware {
        let mut config = Q35Config::new(512 << 20);
        config.smi_features = supported;
        Firmware {
            chipset: Q35Chipset::new(config, FwCfg::new(1, 4)).expect("a valid configuration"),
            ram: Ram(vec![0; 0x4000]),
        }
    }

    fn ctx() -> AccessContext {
        AccessContext::at_cycle(Cycle::ZERO)
    }

    fn out(&mut self, port: u16, width: AccessWidth, value: u32) -> Vec<Effect> {
        let mut effects = Vec::new();
        assert!(self.chipset.port_write(
            &Self::ctx(),
            port,
            width,
            value,
            &mut self.ram,
            &mut effects
        ));
        effects
    }

    /// edk2 `InternalQemuFwCfgDmaBytes`: build the descriptor, write its address to
    /// 0x514/0x518 byte-swapped, then read the control field back. Returns it.
    fn dma(&mut self, control: u32, length: u32) -> u32 {
        let mut descriptor = Vec::new();
        descriptor.extend_from_slice(&control.to_be_bytes());
        descriptor.extend_from_slice(&length.to_be_bytes());
        descriptor.extend_from_slice(&BUFFER.to_be_bytes());
        self.ram.write(DESCRIPTOR, &descriptor).unwrap();
        self.out(
            0x514,
            AccessWidth::Dword,
            ((DESCRIPTOR >> 32) as u32).swap_bytes(),
        );
        self.out(0x518, AccessWidth::Dword, (DESCRIPTOR as u32).swap_bytes());
        let mut control = [0; 4];
        self.ram.read(DESCRIPTOR, &mut control).unwrap();
        u32::from_be_bytes(control)
    }

    fn dma_read(&mut self, key: u16, length: u32) -> Vec<u8> {
        let control = (u32::from(key) << 16) | FwCfg::DMA_CTL_SELECT | FwCfg::DMA_CTL_READ;
        assert_eq!(self.dma(control, length), 0, "DMA read of key {key:#x}");
        let mut bytes = vec![0; length as usize];
        self.ram.read(BUFFER, &mut bytes).unwrap();
        bytes
    }

    /// `QemuFwCfgFindFile` over DMA.
    fn find_file(&mut self, name: &str) -> Option<(u16, u32)> {
        let count = u32::from_be_bytes(
            self.dma_read(FwCfg::KEY_FILE_DIR, 4)
                .try_into()
                .expect("four bytes"),
        );
        let dir = self.dma_read(FwCfg::KEY_FILE_DIR, 4 + 64 * count);
        dir[4..].chunks(64).find_map(|entry| {
            let field = &entry[8..];
            let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
            (&field[..len] == name.as_bytes()).then(|| {
                let size = u32::from_be_bytes(entry[0..4].try_into().expect("four bytes"));
                let selector = u16::from_be_bytes(entry[4..6].try_into().expect("two bytes"));
                (selector, size)
            })
        })
    }

    /// The whole of `NegotiateSmiFeatures`: returns (features-ok byte, DMA status of the
    /// request write).
    fn negotiate(&mut self, request: u64) -> (u8, u32) {
        let (requested, requested_size) = self
            .find_file(SmiNegotiation::REQUESTED_FILE)
            .expect("the platform offers SMI features");
        let (ok, ok_size) = self
            .find_file(SmiNegotiation::FEATURES_OK_FILE)
            .expect("the platform offers SMI features");
        assert_eq!((requested_size, ok_size), (8, 1));
        self.ram.write(BUFFER, &request.to_le_bytes()).unwrap();
        let write = (u32::from(requested) << 16) | FwCfg::DMA_CTL_SELECT | FwCfg::DMA_CTL_WRITE;
        let status = self.dma(write, 8);
        let features_ok = self.dma_read(ok, 1)[0];
        (features_ok, status)
    }

    /// With SMIs enabled (PMBASE 0x600, ACPI_EN, GBL_SMI_EN | APMC_EN), one APM write.
    fn apm_smi(&mut self) -> Vec<Effect> {
        self.out(0xCF8, AccessWidth::Dword, 0x8000_F840);
        self.out(0xCFC, AccessWidth::Dword, 0x600);
        self.out(0xCF8, AccessWidth::Dword, 0x8000_F844);
        self.out(0xCFC, AccessWidth::Byte, 0x80);
        self.out(0x630, AccessWidth::Dword, 0x21);
        self.out(0xB2, AccessWidth::Byte, 0x04)
    }
}

#[test]
fn supported_features_read_back_as_offered() {
    let mut fw = Firmware::boot(SmiFeatureSet::QEMU_DEFAULT);
    let (selector, size) = fw
        .find_file(SmiNegotiation::SUPPORTED_FILE)
        .expect("published");
    assert_eq!(size, 8);
    assert_eq!(fw.dma_read(selector, 8), 7u64.to_le_bytes());
}

#[test]
fn accept_reject_matrix_over_dma() {
    let cases = [
        (0, true),
        (B, true),
        (B | P, true),
        (B | P | U, true),
        (P, false),
        (U, false),
        (P | U, false),
        (B | U, false),
        (B | 8, false),
        (1 << 63, false),
    ];
    for (request, accepted) in cases {
        let mut fw = Firmware::boot(SmiFeatureSet::QEMU_DEFAULT);
        let (ok, status) = fw.negotiate(request);
        assert_eq!(status, 0, "the request write itself succeeds");
        assert_eq!(ok == 1, accepted, "request {request:#x}");
        let expected = if accepted { request } else { 0 };
        assert_eq!(
            fw.chipset.negotiated_smi_features().bits(),
            expected,
            "request {request:#x}"
        );
    }
}

#[test]
fn broadcast_only_platform_refuses_hotplug() {
    let mut fw = Firmware::boot(SmiFeatureSet::BROADCAST);
    assert_eq!(fw.negotiate(B | P).0, 0);
    assert!(matches!(
        fw.chipset.smi_negotiation().last_rejection(),
        Some(SmiFeatureError::Unsupported { .. })
    ));
    // A retry with a valid request succeeds.
    assert_eq!(fw.negotiate(B).0, 1);
}

#[test]
fn negotiated_broadcast_turns_apm_smis_into_broadcasts_and_is_locked() {
    let mut fw = Firmware::boot(SmiFeatureSet::QEMU_DEFAULT);
    assert_eq!(
        fw.apm_smi(),
        [Effect::RaiseSmi {
            target: SmiTarget::Cpu(Firmware::ctx().cpu)
        }]
    );
    assert_eq!(fw.negotiate(B | P).0, 1);
    assert_eq!(
        fw.apm_smi(),
        [Effect::RaiseSmi {
            target: SmiTarget::AllCpus
        }]
    );
    // Locked: asking for less later changes nothing, features-ok stays 1.
    assert_eq!(fw.negotiate(0).0, 1);
    assert_eq!(
        fw.chipset.negotiated_smi_features(),
        SmiFeatureSet::from_bits(B | P)
    );
    // A hard reset reopens negotiation and clears the request.
    fw.chipset.reset(true);
    assert_eq!(fw.chipset.negotiated_smi_features(), SmiFeatureSet::empty());
    let (requested, _) = fw.find_file(SmiNegotiation::REQUESTED_FILE).unwrap();
    assert_eq!(fw.dma_read(requested, 8), [0; 8]);
    let (ok, _) = fw.find_file(SmiNegotiation::FEATURES_OK_FILE).unwrap();
    assert_eq!(fw.chipset.fw_cfg().files().contents(ok), Some(&[0][..]));
    // Merely selecting features-ok negotiates whatever is requested — here nothing, which
    // is valid — as QEMU's select callback does.
    assert_eq!(fw.dma_read(ok, 1), [1]);
    assert!(fw.chipset.smi_negotiation().is_locked());
    assert_eq!(fw.chipset.negotiated_smi_features(), SmiFeatureSet::empty());
}

#[test]
fn the_data_port_cannot_write_the_request() {
    let mut fw = Firmware::boot(SmiFeatureSet::QEMU_DEFAULT);
    let (requested, _) = fw.find_file(SmiNegotiation::REQUESTED_FILE).unwrap();
    fw.out(0x510, AccessWidth::Word, u32::from(requested));
    fw.out(0x511, AccessWidth::Byte, 0x01);
    assert_eq!(fw.dma_read(requested, 8), [0; 8]);
    // The supported file is read-only to DMA as well.
    let (supported, _) = fw.find_file(SmiNegotiation::SUPPORTED_FILE).unwrap();
    fw.ram.write(BUFFER, &0u64.to_le_bytes()).unwrap();
    let write = (u32::from(supported) << 16) | FwCfg::DMA_CTL_SELECT | FwCfg::DMA_CTL_WRITE;
    assert_eq!(fw.dma(write, 8), FwCfg::DMA_CTL_ERROR);
    assert_eq!(fw.dma_read(supported, 8), 7u64.to_le_bytes());
}

#[test]
fn no_supported_features_means_no_files() {
    let mut fw = Firmware::boot(SmiFeatureSet::empty());
    assert_eq!(fw.find_file(SmiNegotiation::SUPPORTED_FILE), None);
    assert_eq!(fw.find_file(SmiNegotiation::FEATURES_OK_FILE), None);
}
