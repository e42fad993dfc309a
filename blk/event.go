package blk

// Event is a debug event of the block layer: a named point in a request's
// life where a blkdebug node can stop the request or inject an error.
type Event int

// The events qemu-io 7.2 knows, in QEMU's order (BlkdebugEvent).
const (
	EvL1Update Event = iota
	EvL1GrowAllocTable
	EvL1GrowWriteTable
	EvL1GrowActivateTable
	EvL2Load
	EvL2Update
	EvL2UpdateCompressed
	EvL2AllocCowRead
	EvL2AllocWrite
	EvReadAIO
	EvReadBackingAIO
	EvReadCompressed
	EvWriteAIO
	EvWriteCompressed
	EvVMStateLoad
	EvVMStateSave
	EvCowRead
	EvCowWrite
	EvReftableLoad
	EvReftableGrow
	EvReftableUpdate
	EvRefblockLoad
	EvRefblockUpdate
	EvRefblockUpdatePart
	EvRefblockAlloc
	EvRefblockAllocHookup
	EvRefblockAllocWrite
	EvRefblockAllocWriteBlocks
	EvRefblockAllocWriteTable
	EvRefblockAllocSwitchTable
	EvClusterAlloc
	EvClusterAllocBytes
	EvClusterFree
	EvFlushToOS
	EvFlushToDisk
	EvPwritevRMWHead
	EvPwritevRMWAfterHead
	EvPwritevRMWTail
	EvPwritevRMWAfterTail
	EvPwritev
	EvPwritevZero
	EvPwritevDone
	EvEmptyImagePrepare
	EvL1ShrinkWriteTable
	EvL1ShrinkFreeL2Clusters
	EvCorWrite
	EvClusterAllocSpace
	EvNone
	numEvents
)

var eventNames = [numEvents]string{
	"l1_update", "l1_grow_alloc_table", "l1_grow_write_table", "l1_grow_activate_table",
	"l2_load", "l2_update", "l2_update_compressed", "l2_alloc_cow_read", "l2_alloc_write",
	"read_aio", "read_backing_aio", "read_compressed", "write_aio", "write_compressed",
	"vmstate_load", "vmstate_save", "cow_read", "cow_write",
	"reftable_load", "reftable_grow", "reftable_update",
	"refblock_load", "refblock_update", "refblock_update_part", "refblock_alloc",
	"refblock_alloc_hookup", "refblock_alloc_write", "refblock_alloc_write_blocks",
	"refblock_alloc_write_table", "refblock_alloc_switch_table",
	"cluster_alloc", "cluster_alloc_bytes", "cluster_free",
	"flush_to_os", "flush_to_disk",
	"pwritev_rmw_head", "pwritev_rmw_after_head", "pwritev_rmw_tail", "pwritev_rmw_after_tail",
	"pwritev", "pwritev_zero", "pwritev_done",
	"empty_image_prepare", "l1_shrink_write_table", "l1_shrink_free_l2_clusters",
	"cor_write", "cluster_alloc_space", "none",
}

// String returns the event's QEMU name.
func (e Event) String() string {
	if e < 0 || e >= numEvents {
		return "invalid"
	}
	return eventNames[e]
}

// ParseEvent looks an event up by its exact (case-sensitive) QEMU name.
func ParseEvent(name string) (Event, bool) {
	for i, n := range eventNames {
		if n == name {
			return Event(i), true
		}
	}
	return 0, false
}

// EventNames returns every event name in QEMU's order (for completion).
func EventNames() []string { return append([]string(nil), eventNames[:]...) }
