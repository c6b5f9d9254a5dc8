//! Execution contexts: the root of a run, and one child context per stream item.
//! Values and ready counts live per context; reads walk up to the root.

use crate::record::Held;

/// Index of a context in the arena.
pub(crate) type CtxId = u32;
/// "No context" / "no stream".
pub(crate) const NONE: u32 = u32::MAX;
/// Marks a node's soft group as satisfied in a ready count.
pub(crate) const SOFT_DONE: u32 = 1 << 31;

#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub parent: CtxId,
    /// Item index within the stream that created this context.
    pub index: u32,
    /// The stream instance that created this context (`NONE` for the root).
    pub stream: u32,
    /// Value slots, allocated on first write. Values are shared: reading one for an op's
    /// inputs copies nothing.
    pub slots: Vec<Option<Held>>,
    /// Ready counts, allocated on first decrement.
    pub ready: Vec<u32>,
    /// Completed nodes (only tracked when some node waits on ops outside its stream).
    pub done: Vec<bool>,
    /// Queued or running work, open streams and live child contexts.
    pub active: u32,
    /// An op cancelled this context: its work is dropped, results are discarded.
    pub cancelled: bool,
    /// Where op calls in this context are (for `OpContext::cancel_context`), built once.
    pub scope: Option<crate::op::OpScope>,
}

/// An arena of contexts that reuses freed entries (and their allocations), so a long
/// stream uses memory for the items in flight, not for the items already consumed.
#[derive(Debug, Default)]
pub(crate) struct Contexts {
    items: Vec<Ctx>,
    free: Vec<CtxId>,
}

impl Contexts {
    pub fn alloc(&mut self, parent: CtxId, index: u32, stream: u32) -> CtxId {
        match self.free.pop() {
            Some(id) => {
                let c = &mut self.items[id as usize];
                c.parent = parent;
                c.index = index;
                c.stream = stream;
                c.slots.clear();
                c.ready.clear();
                c.done.clear();
                c.active = 0;
                c.cancelled = false;
                c.scope = None;
                id
            }
            None => {
                self.items.push(Ctx { parent, index, stream, ..Ctx::default() });
                (self.items.len() - 1) as CtxId
            }
        }
    }

    /// Free an item context. It no longer belongs to a stream, so closing it again (a
    /// stream finishing inside it can close it first) is a no-op.
    pub fn release(&mut self, id: CtxId) {
        let c = &mut self.items[id as usize];
        c.slots.clear();
        c.stream = NONE;
        self.free.push(id);
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.free.clear();
    }

    pub fn get(&self, id: CtxId) -> &Ctx {
        &self.items[id as usize]
    }

    pub fn get_mut(&mut self, id: CtxId) -> &mut Ctx {
        &mut self.items[id as usize]
    }

    /// The value of `slot` visible from `id` (own value first, then ancestors').
    pub fn read(&self, mut id: CtxId, slot: u32) -> Option<&Held> {
        while id != NONE {
            let c = &self.items[id as usize];
            if let Some(Some(v)) = c.slots.get(slot as usize) {
                return Some(v);
            }
            id = c.parent;
        }
        None
    }

    pub fn write(&mut self, id: CtxId, slot: u32, slot_count: u32, value: Held) {
        let c = &mut self.items[id as usize];
        if c.slots.is_empty() {
            c.slots.resize(slot_count as usize, None);
        }
        c.slots[slot as usize] = Some(value);
    }

    /// `true` when `node` completed in `id` or one of its ancestors.
    pub fn done_above(&self, mut id: CtxId, node: u32) -> bool {
        while id != NONE {
            let c = &self.items[id as usize];
            if c.done.get(node as usize).copied().unwrap_or(false) {
                return true;
            }
            id = c.parent;
        }
        false
    }

    /// Whether `id` or one of its ancestors was cancelled.
    pub fn is_cancelled(&self, mut id: CtxId) -> bool {
        while id != NONE {
            let c = &self.items[id as usize];
            if c.cancelled {
                return true;
            }
            id = c.parent;
        }
        false
    }

    /// Ids of the live contexts (not on the free list).
    pub fn live(&self) -> Vec<CtxId> {
        let mut free = vec![false; self.items.len()];
        for &f in &self.free {
            free[f as usize] = true;
        }
        (0..self.items.len() as CtxId).filter(|&i| !free[i as usize]).collect()
    }

    /// `true` when `ancestor` is `id` or above it.
    pub fn descends(&self, mut id: CtxId, ancestor: CtxId) -> bool {
        while id != NONE {
            if id == ancestor {
                return true;
            }
            id = self.items[id as usize].parent;
        }
        false
    }

    /// A readable path like `main/3/0`.
    pub fn path(&self, mut id: CtxId, root: &str) -> String {
        let mut parts = Vec::new();
        while id != NONE {
            let c = &self.items[id as usize];
            if c.parent == NONE {
                break;
            }
            parts.push(c.index.to_string());
            id = c.parent;
        }
        parts.push(root.to_string());
        parts.reverse();
        parts.join("/")
    }
}
