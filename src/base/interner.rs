//! String interning: each distinct string is stored once and named by a [`Sym`].

use std::num::NonZeroU32;

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// A handle to an interned string. `Option<Sym>` is four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sym(NonZeroU32);

impl Sym {
    /// Dense index, from 0.
    pub fn index(self) -> usize {
        self.0.get() as usize - 1
    }

    /// The symbol of a dense index (as stored by [`Sym::index`]).
    pub fn from_index(index: usize) -> Sym {
        Sym(NonZeroU32::new(index as u32 + 1).unwrap_or(NonZeroU32::MIN))
    }
}

/// Append-only string table.
#[derive(Default)]
pub struct Interner {
    strings: Vec<Box<str>>,
    table: HashTable<u32>,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner")
            .field("len", &self.strings.len())
            .finish()
    }
}

impl Interner {
    /// Builds an interner holding `strings` in order (as saved by [`Interner::strings`]).
    pub fn from_strings(strings: Vec<Box<str>>) -> Interner {
        let mut me = Interner {
            strings: Vec::with_capacity(strings.len()),
            table: HashTable::with_capacity(strings.len()),
        };
        for s in strings {
            me.intern(&s);
        }
        me
    }

    /// The symbol of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> Sym {
        let hash = xxh3_64(s.as_bytes());
        let strings = &self.strings;
        if let Some(&i) = self.table.find(hash, |&i| &*strings[i as usize] == s) {
            return sym(i);
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.into());
        let strings = &self.strings;
        self.table
            .insert_unique(hash, i, |&j| xxh3_64(strings[j as usize].as_bytes()));
        sym(i)
    }

    /// The symbol of `s`, if interned.
    pub fn get(&self, s: &str) -> Option<Sym> {
        let hash = xxh3_64(s.as_bytes());
        self.table
            .find(hash, |&i| &*self.strings[i as usize] == s)
            .map(|&i| sym(i))
    }

    /// The string of a symbol.
    pub fn resolve(&self, s: Sym) -> &str {
        &self.strings[s.index()]
    }

    /// The string of an optional symbol.
    pub fn resolve_opt(&self, s: Option<Sym>) -> Option<&str> {
        s.map(|s| self.resolve(s))
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// All strings, in symbol order.
    pub fn strings(&self) -> &[Box<str>] {
        &self.strings
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.strings.iter().map(|s| s.len() + 16).sum::<usize>() + self.table.capacity() * 5
    }
}

fn sym(i: u32) -> Sym {
    // i < u32::MAX by construction: the interner never holds 4 billion strings.
    Sym(NonZeroU32::new(i + 1).unwrap_or(NonZeroU32::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_once() {
        let mut i = Interner::default();
        let a = i.intern("alpha");
        let b = i.intern("beta");
        assert_eq!(i.intern("alpha"), a);
        assert_ne!(a, b);
        assert_eq!(i.resolve(b), "beta");
        assert_eq!(i.get("gamma"), None);
        let j = Interner::from_strings(i.strings().to_vec());
        assert_eq!(j.get("beta"), Some(b));
    }
}
