// SPDX-License-Identifier: MIT OR Apache-2.0
//! bootmatrix option ROM driver.
//!
//! Wrapped into a PCI expansion ROM (see `harness/src/optionrom.rs`) and
//! attached to an emulated NIC, it is loaded and started by OVMF's PciBusDxe
//! during PCI enumeration. All it does is print one marker line on COM1 and
//! return, so the harness can tell whether the firmware dispatched the ROM
//! (for example under Secure Boot with an unsigned image).
//!
//! Why a boot-service driver: PciBusDxe ignores option ROM images whose PE
//! subsystem is "EFI application"; only boot-service (11) and runtime (12)
//! drivers are started. `build.rs` sets the subsystem. Returning SUCCESS
//! from a driver's entry point leaves it resident, which is harmless here.
//!
//! Why raw port I/O instead of ConOut: option ROMs run while PCI devices are
//! being enumerated, before the console drivers are connected, so
//! `SystemTable.ConOut` may be missing or not yet routed to the serial port.
//! The 16550 UART at 0x3F8 was already programmed by the firmware (OVMF sets
//! it up early for its own serial console), so writing bytes to its transmit
//! register is enough and needs no firmware service at all.
//!
//! The line format is a contract with the host-side parser: bump `v=`
//! whenever it changes.

#![no_main]
#![no_std]

use core::arch::asm;
use uefi::prelude::*;

/// The marker line. Leading CRLF: firmware may have left the serial cursor
/// mid-line, and the host parser looks for the marker at a line start.
const LINE: &[u8] = b"\r\nBOOTMATRIX-OPROM v=1 loaded\r\n";

/// COM1 base port: Transmit Holding Register when DLAB (LCR bit 7) is clear,
/// which it is once the firmware has finished setting the baud rate.
const COM1_THR: u16 = 0x3F8;
/// COM1 Line Status Register.
const COM1_LSR: u16 = COM1_THR + 5;
/// LSR bit 5: the Transmit Holding Register is empty (ready for a byte).
const LSR_THR_EMPTY: u8 = 1 << 5;
/// Polls of LSR before a byte is written anyway. QEMU's UART is ready at
/// once; the bound only keeps a missing or wedged UART (reads as 0x00) from
/// hanging PCI enumeration forever.
const SPIN_LIMIT: u32 = 100_000;

#[entry]
fn main() -> Status {
    serial_write(LINE);
    Status::SUCCESS
}

/// Writes `bytes` to COM1, waiting (boundedly) for THR-empty before each.
fn serial_write(bytes: &[u8]) {
    for &byte in bytes {
        for _ in 0..SPIN_LIMIT {
            // SAFETY: reading the LSR of the legacy COM1 UART has no side
            // effects besides reporting its state.
            if unsafe { inb(COM1_LSR) } & LSR_THR_EMPTY != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        // SAFETY: writing one byte to COM1's THR only transmits it.
        unsafe { outb(COM1_THR, byte) };
    }
}

/// # Safety
/// `port` must be an I/O port whose read has no harmful side effects.
unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: upheld by the caller; `in` touches no memory or stack.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port,
             options(nomem, nostack, preserves_flags));
    }
    value
}

/// # Safety
/// `port` must be an I/O port for which writing `value` is harmless.
unsafe fn outb(port: u16, value: u8) {
    // SAFETY: upheld by the caller; `out` touches no memory or stack.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value,
             options(nomem, nostack, preserves_flags));
    }
}

/// Nothing above can panic (no indexing, no arithmetic overflow, no
/// allocation), but `no_std` requires a handler. It reports on the same
/// serial line and parks the CPU rather than returning into the firmware
/// with an undefined state.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    serial_write(b"\r\nBOOTMATRIX-OPROM v=1 panic\r\n");
    loop {
        // SAFETY: `hlt` only pauses the CPU until the next interrupt.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}
