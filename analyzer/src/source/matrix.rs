//! The groups x profiles matrix the ranking's scan fills: one sum of a value column per
//! (group, profile) cell, stored profile by profile (column-major).
//!
//! Cells are kept as `u32` while they hold what they would hold as `f64`, and a column
//! whose sum stops fitting (negative, or over 4 GiB of one metric in one cell) becomes a
//! column of `f64` from then on. The values read back are therefore bit for bit the ones
//! an all-`f64` matrix holds: sums of integers are exact in `f64` below 2^53, whatever the
//! order of the adds, so a narrow cell converts exactly, and a widened column goes on
//! adding as an `f64` column would have.
//!
//! Why: by stack, the matrix is the ranking's memory. At 10,000 profiles x 100,000 stacks
//! (1 billion cells) an `f64` matrix alone is 8 GB, and at 100 million cells it was 800 MB
//! of the 960 MiB peak, with 17% of the CPU samples in the kernel clearing its fresh
//! pages. Heap sums per stack or per site rarely reach 4 GiB, so nearly every column stays
//! narrow at half the bytes. A widened column keeps its unused narrow slot (the matrix is
//! one allocation), so a matrix whose every column widened costs 12 bytes per cell.

/// A dense groups x profiles matrix of sums, stored profile by profile.
#[derive(Debug, Default)]
pub struct Matrix {
    /// `groups x profiles` narrow cells, column-major, in one allocation.
    narrow: Vec<u32>,
    /// Per profile column: its `f64` cells once a sum did not fit a `u32`.
    wide: Vec<Option<Box<[f64]>>>,
    groups: usize,
}

/// One profile column, read only.
#[derive(Debug, Clone, Copy)]
pub enum ColumnRef<'a> {
    /// Every cell fits a `u32`.
    Narrow(&'a [u32]),
    /// The column widened to `f64`.
    Wide(&'a [f64]),
}

impl ColumnRef<'_> {
    /// The value of group `g`.
    #[inline]
    pub fn get(&self, g: usize) -> f64 {
        match self {
            ColumnRef::Narrow(c) => f64::from(c[g]),
            ColumnRef::Wide(c) => c[g],
        }
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        match self {
            ColumnRef::Narrow(c) => c.len(),
            ColumnRef::Wide(c) => c.len(),
        }
    }

    /// Whether the column has no groups.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for ColumnRef<'_> {
    /// Equal values in every group, however each column is stored.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ColumnRef::Narrow(a), ColumnRef::Narrow(b)) => a == b,
            (ColumnRef::Wide(a), ColumnRef::Wide(b)) => a == b,
            _ => self.len() == other.len() && (0..self.len()).all(|g| self.get(g) == other.get(g)),
        }
    }
}

/// One profile column, to add into.
#[derive(Debug)]
pub struct ColumnMut<'a> {
    narrow: &'a mut [u32],
    wide: &'a mut Option<Box<[f64]>>,
}

impl ColumnMut<'_> {
    /// Adds `v` to group `g`.
    #[inline]
    pub fn add(&mut self, g: usize, v: i64) {
        if let Some(w) = self.wide.as_deref_mut() {
            w[g] += v as f64;
            return;
        }
        let cell = &mut self.narrow[g];
        match u32::try_from(v).ok().and_then(|v| cell.checked_add(v)) {
            Some(sum) => *cell = sum,
            None => self.widen()[g] += v as f64,
        }
    }

    /// The narrow cells while the column has not widened, to add into directly; a sum
    /// that does not fit a cell must go through [`ColumnMut::add`] instead.
    #[inline]
    pub fn narrow_mut(&mut self) -> Option<&mut [u32]> {
        match self.wide {
            Some(_) => None,
            None => Some(&mut *self.narrow),
        }
    }

    /// Writes the narrow cells' zeros again, sequentially (see `scan::Column`).
    pub fn write_zeros(&mut self) {
        self.narrow.fill(0);
    }

    /// Moves the column to `f64` cells and returns them.
    #[cold]
    fn widen(&mut self) -> &mut [f64] {
        let narrow = &*self.narrow;
        self.wide
            .get_or_insert_with(|| narrow.iter().map(|&v| f64::from(v)).collect())
    }
}

impl Matrix {
    /// A zeroed matrix. Its pages are not written yet: the scan writes each column's zeros
    /// again just before it adds into the column (see `scan::Column`). (Transparent huge
    /// pages were measured slower here: the kernel zeroes and compacts 2 MiB at a time on
    /// the first write.)
    pub fn zeroed(groups: usize, profiles: usize) -> Matrix {
        Matrix {
            narrow: vec![0; groups * profiles],
            wide: vec![None; profiles],
            groups,
        }
    }

    /// A matrix of `data`, given profile by profile (`data.len()` a multiple of `groups`);
    /// each value must be an integer, as sums of a value column are.
    pub fn from_columns(groups: usize, data: &[f64]) -> Matrix {
        let profiles = data.len().checked_div(groups).unwrap_or(0);
        debug_assert_eq!(groups * profiles, data.len(), "ragged matrix");
        let mut m = Matrix::zeroed(groups, profiles);
        for (mut col, values) in m.columns_mut().into_iter().zip(data.chunks(groups.max(1))) {
            for (g, &v) in values.iter().enumerate() {
                debug_assert_eq!(v, v.trunc(), "not a sum of integers");
                col.add(g, v as i64);
            }
        }
        m
    }

    /// Number of groups (values per profile column).
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Number of profile columns.
    pub fn profiles(&self) -> usize {
        self.wide.len()
    }

    /// The values of every group in profile `p`.
    pub fn column(&self, p: usize) -> ColumnRef<'_> {
        match &self.wide[p] {
            Some(w) => ColumnRef::Wide(w),
            None => ColumnRef::Narrow(&self.narrow[p * self.groups..(p + 1) * self.groups]),
        }
    }

    /// Every profile column, each to add into on its own (for example by another thread).
    pub fn columns_mut(&mut self) -> Vec<ColumnMut<'_>> {
        let g = self.groups;
        if g == 0 {
            return Vec::new();
        }
        self.narrow
            .chunks_mut(g)
            .zip(self.wide.iter_mut())
            .map(|(narrow, wide)| ColumnMut { narrow, wide })
            .collect()
    }

    /// Adds `v` to group `g` of profile `p`.
    pub fn add(&mut self, p: usize, g: usize, v: i64) {
        let gs = self.groups;
        ColumnMut {
            narrow: &mut self.narrow[p * gs..(p + 1) * gs],
            wide: &mut self.wide[p],
        }
        .add(g, v);
    }

    /// Keeps only the profile columns whose `keep` flag is set, in order.
    pub fn retain_columns(&mut self, keep: &[bool]) {
        let g = self.groups;
        let mut to = 0;
        for (p, k) in keep.iter().enumerate() {
            if *k {
                if to != p {
                    self.narrow.copy_within(p * g..(p + 1) * g, to * g);
                    self.wide.swap(p, to);
                }
                to += 1;
            }
        }
        self.narrow.truncate(to * g);
        self.wide.truncate(to);
    }

    /// Writes the rows of the groups in `groups` one after another into `out`, each over
    /// every profile (`out.len()` must be `groups.len() x profiles`).
    ///
    /// The transpose goes in tiles of [`TILE`] profiles, so that each group's row is
    /// written a whole cache line at a time while the tile's columns stay in cache. A
    /// tile of narrow columns is first copied, column after column, into a small buffer:
    /// the columns lie 40 KB apart at 10,000 groups, so each is a fresh cache miss, and
    /// the copies ask for all of them at once. Read one cell at a time, row after row,
    /// the loads waited on one column's miss after another, and the transpose was 6% of a
    /// ranking of 100M rows by stack (perf: samples on the instruction after the load).
    /// The next tile's columns are prefetched while a tile is copied: tiles of 16 with
    /// that prefetch transposed a 10,000 x 10,000 matrix in chunks of 64 groups on two
    /// threads in 85-93 ms, tiles of 8 without it in 99-110 ms (three alternating runs of
    /// a microbenchmark; tiles of 16 alone, and prefetching two tiles ahead, did no better).
    pub fn transpose_into(&self, groups: std::ops::Range<usize>, out: &mut [f64]) {
        let np = self.profiles();
        let width = groups.len();
        debug_assert_eq!(out.len(), width * np);
        let mut buffer = vec![0u32; TILE * width];
        for p0 in (0..np).step_by(TILE) {
            let p1 = (p0 + TILE).min(np);
            // The next tile's cells are asked for now, so that their misses overlap this
            // tile's copies and conversions.
            for p in (p1..p1 + TILE).take_while(|p| *p < np) {
                if let ColumnRef::Narrow(c) = self.column(p) {
                    prefetch(&c[groups.clone()]);
                }
            }
            let mut tile = [ColumnRef::Narrow(&[]); TILE];
            let mut all_narrow = true;
            for (i, p) in (p0..p1).enumerate() {
                tile[i] = self.column(p);
                match tile[i] {
                    ColumnRef::Narrow(c) => {
                        buffer[i * width..(i + 1) * width].copy_from_slice(&c[groups.clone()])
                    }
                    ColumnRef::Wide(_) => all_narrow = false,
                }
            }
            let tile_width = p1 - p0;
            if all_narrow {
                // The common case, without a branch per cell.
                for (k, row) in out.chunks_exact_mut(np).enumerate() {
                    for (i, dst) in row[p0..p1].iter_mut().enumerate() {
                        *dst = f64::from(buffer[i * width + k]);
                    }
                }
            } else {
                for (k, row) in out.chunks_exact_mut(np).enumerate() {
                    for (dst, col) in row[p0..p1].iter_mut().zip(&tile[..tile_width]) {
                        *dst = col.get(groups.start + k);
                    }
                }
            }
        }
    }
}

/// Profiles per tile of [`Matrix::transpose_into`]: 16 `f64` cells are two cache lines of
/// a group's row.
const TILE: usize = 16;

/// Asks the CPU to bring `cells` into its caches (a hint: it never faults). On x86-64 with
/// a prefetch per cache line; elsewhere nothing.
#[inline]
fn prefetch(cells: &[u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        const LINE: usize = 64 / std::mem::size_of::<u32>();
        for line in cells.chunks(LINE) {
            // SAFETY: SSE is part of x86-64, and a prefetch reads nothing it could fault on.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = cells;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_widens_exactly_when_a_sum_does_not_fit() {
        let mut m = Matrix::zeroed(3, 2);
        m.add(0, 0, 7);
        m.add(0, 1, i64::from(u32::MAX));
        m.add(1, 2, 5);
        assert!(matches!(m.column(0), ColumnRef::Narrow(_)));
        // Over u32::MAX: the column widens and keeps what it held.
        m.add(0, 1, 1);
        assert!(matches!(m.column(0), ColumnRef::Wide(_)));
        assert_eq!(m.column(0).get(0), 7.0);
        assert_eq!(m.column(0).get(1), 4_294_967_296.0);
        // Negative values widen too, and later adds go on in f64.
        m.add(1, 2, -6);
        m.add(1, 2, 3);
        assert_eq!(m.column(1).get(2), 2.0);
        assert!(matches!(m.column(1), ColumnRef::Wide(_)));
    }

    #[test]
    fn sums_equal_an_f64_matrix_bit_for_bit() {
        // Pseudo-random adds of mixed sizes into a narrow-first and an all-f64 matrix.
        let (groups, profiles) = (7, 5);
        let mut m = Matrix::zeroed(groups, profiles);
        let mut reference = vec![0.0f64; groups * profiles];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (p, g) = (
                (x % profiles as u64) as usize,
                ((x >> 8) % groups as u64) as usize,
            );
            let v = match i % 5 {
                0 => (x >> 40) as i64,
                1 => -((x >> 50) as i64),
                _ => (x >> 34) as i64,
            };
            m.add(p, g, v);
            reference[p * groups + g] += v as f64;
        }
        for p in 0..profiles {
            for g in 0..groups {
                assert_eq!(
                    m.column(p).get(g).to_bits(),
                    reference[p * groups + g].to_bits()
                );
            }
        }
    }

    #[test]
    fn columns_compare_by_value_whatever_their_storage() {
        let mut m = Matrix::from_columns(2, &[1.0, 2.0, 1.0, 2.0, 1.0, 3.0]);
        assert_eq!(m.column(0), m.column(1));
        m.add(1, 0, -1);
        m.add(1, 0, 1);
        assert!(matches!(m.column(1), ColumnRef::Wide(_)));
        assert_eq!(m.column(0), m.column(1));
        assert_ne!(m.column(1), m.column(2));
    }

    #[test]
    fn retain_keeps_wide_columns_with_their_values() {
        let mut m = Matrix::from_columns(2, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        m.add(2, 1, -10);
        m.retain_columns(&[false, true, true]);
        assert_eq!(m.profiles(), 2);
        assert_eq!((m.column(0).get(0), m.column(0).get(1)), (3.0, 4.0));
        assert!(matches!(m.column(1), ColumnRef::Wide(_)));
        assert_eq!((m.column(1).get(0), m.column(1).get(1)), (5.0, -4.0));
    }

    #[test]
    fn transpose_reads_narrow_and_wide_tiles() {
        for (groups, profiles, widen) in [(5, 19, None), (3, 8, Some(3)), (4, 17, Some(16))] {
            let data: Vec<f64> = (0..groups * profiles).map(|i| i as f64).collect();
            let mut m = Matrix::from_columns(groups, &data);
            if let Some(p) = widen {
                m.add(p, 0, -1);
                m.add(p, 0, 1);
            }
            for range in [0..groups, 1..groups.min(3)] {
                let mut out = vec![-1.0; range.len() * profiles];
                m.transpose_into(range.clone(), &mut out);
                for (k, g) in range.clone().enumerate() {
                    for p in 0..profiles {
                        assert_eq!(out[k * profiles + p], (p * groups + g) as f64);
                    }
                }
            }
        }
    }
}
