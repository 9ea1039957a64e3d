//! Shared by the test binaries: a small deterministic generator (xorshift64*), so failures
//! reproduce. Each binary uses a subset of the helpers.
#![allow(dead_code)]

use half::f16;

/// xorshift64* state.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn normal(&mut self) -> f32 {
        let u1 = f64::from(self.uniform()).max(1e-12);
        let u2 = f64::from(self.uniform());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
    pub fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
    pub fn q8(&mut self) -> i8 {
        ((self.next() % 255) as i16 - 127) as i8
    }
    pub fn f16(&mut self, scale: f32) -> [u8; 2] {
        let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        f16::from_f32((2.0 * u - 1.0) * scale).to_le_bytes()
    }
}
