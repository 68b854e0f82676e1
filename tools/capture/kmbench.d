#!/usr/sbin/dtrace -C -Z -s
/*
 * kmbench.d — records one kext's kernel memory KPI calls on macOS in the
 * text format `kmbench trace import --format dtrace` reads
 * (docs/kmt-format.md, "DTrace capture format").
 *
 *   sudo dtrace -C -Z -q -s tools/capture/kmbench.d KEXT_BASE KEXT_SIZE KEXT_NAME -o capture.txt
 *
 * KEXT_BASE and KEXT_SIZE are the kext's load address and size, as listed by
 * `kmutil showloaded --bundle-identifier KEXT_NAME` (columns Address and Size);
 * only calls made from that range are recorded. fbt probes need System
 * Integrity Protection to allow DTrace (`csrutil enable --without dtrace`).
 * Functions this kernel does not have (IOMalloc vs IOMalloc_external, ...)
 * match no probe; -Z lets the script run anyway.
 *
 * Each record: TIMESTAMP_NS CPU TID PROBE key=value ... exec=EXECNAME
 */

#pragma D option quiet
#pragma D option bufsize=64m
#pragma D option dynvarsize=64m
#pragma D option switchrate=50hz

#define FROM_KEXT (caller >= $1 && caller < $1 + $2)

dtrace:::BEGIN
{
	printf("#kmbench-dtrace 1 kext=%s kext_base=0x%x kext_size=0x%x\n", $$3, (uint64_t)$1, (uint64_t)$2);
	printf("# TIMESTAMP_NS CPU TID PROBE FIELDS... exec=EXECNAME\n");
}

/* ---- IOMalloc family: size on entry, pointer on return ---- */

#define IOMALLOC(fn, name, align_arg)                                            \
fbt::fn:entry /FROM_KEXT && !self->m_on/                                          \
{ self->m_on = 1; self->m_name = name; self->m_size = arg0;                      \
  self->m_align = align_arg; self->m_site = caller; }                            \
fbt::fn:return /self->m_on/                                                      \
{ printf("%d %d %d %s size=%d align=%d ptr=0x%x site=%a exec=%s\n", timestamp, cpu, \
         tid, self->m_name, self->m_size, self->m_align, arg1, self->m_site, execname); \
  self->m_on = 0; }

IOMALLOC(IOMalloc, "IOMalloc", 0)
IOMALLOC(IOMalloc_external, "IOMalloc", 0)
IOMALLOC(IOMallocData, "IOMallocData", 0)
IOMALLOC(IOMallocZero, "IOMallocZero", 0)
IOMALLOC(IOMallocZero_external, "IOMallocZero", 0)
IOMALLOC(IOMallocZeroData, "IOMallocZeroData", 0)
IOMALLOC(IOMallocAligned, "IOMallocAligned", arg1)
IOMALLOC(IOMallocAligned_external, "IOMallocAligned", arg1)
IOMALLOC(IOMallocPageable, "IOMallocPageable", arg1)
IOMALLOC(IOMallocPageable_external, "IOMallocPageable", arg1)
IOMALLOC(IOMallocContiguous, "IOMallocContiguous", arg1)

/* ---- IOFree family: (address, size) ---- */

#define IOFREE(fn, name)                                                         \
fbt::fn:entry /FROM_KEXT/                                                        \
{ printf("%d %d %d %s ptr=0x%x size=%d site=%a exec=%s\n", timestamp, cpu, tid,  \
         name, arg0, arg1, caller, execname); }

IOFREE(IOFree, "IOFree")
IOFREE(IOFree_external, "IOFree")
IOFREE(IOFreeData, "IOFreeData")
IOFREE(IOFreeAligned, "IOFreeAligned")
IOFREE(IOFreeAligned_external, "IOFreeAligned")
IOFREE(IOFreePageable, "IOFreePageable")
IOFREE(IOFreeContiguous, "IOFreeContiguous")

/* ---- OSMalloc: (size, tag) → pointer; OSFree(address, size, tag); tags by name ---- */

fbt::OSMalloc_Tagalloc:entry /FROM_KEXT/
{ self->t_on = 1; self->t_name = stringof(arg0); }
fbt::OSMalloc_Tagalloc:return /self->t_on/
{ printf("%d %d %d OSMalloc_Tagalloc tag=0x%x name=%s exec=%s\n", timestamp, cpu, tid, arg1,
         self->t_name, execname); self->t_on = 0; }

#define OSMALLOC(fn)                                                             \
fbt::fn:entry /FROM_KEXT && !self->o_on/                                          \
{ self->o_on = 1; self->o_size = arg0; self->o_tag = arg1; self->o_site = caller; } \
fbt::fn:return /self->o_on/                                                      \
{ printf("%d %d %d %s size=%d tag=0x%x ptr=0x%x site=%a exec=%s\n", timestamp, cpu, \
         tid, probefunc, self->o_size, self->o_tag, arg1, self->o_site, execname); \
  self->o_on = 0; }

OSMALLOC(OSMalloc)
OSMALLOC(OSMalloc_noblock)
OSMALLOC(OSMalloc_nowait)

fbt::OSFree:entry /FROM_KEXT/
{ printf("%d %d %d OSFree ptr=0x%x size=%d tag=0x%x site=%a exec=%s\n", timestamp, cpu, tid,
         arg0, arg1, arg2, caller, execname); }

/* ---- IOBufferMemoryDescriptor: factories → object; free() of objects seen ---- */

/* inTaskWithOptions(task, options, capacity, alignment) */
fbt::_ZN24IOBufferMemoryDescriptor17inTaskWithOptions*:entry /FROM_KEXT && !self->b_on/
{ self->b_on = 1; self->b_opt = arg1; self->b_cap = arg2; self->b_align = arg3; self->b_mask = 0; self->b_site = caller; }
/* inTaskWithPhysicalMask(task, options, capacity, physicalMask) */
fbt::_ZN24IOBufferMemoryDescriptor22inTaskWithPhysicalMask*:entry /FROM_KEXT && !self->b_on/
{ self->b_on = 1; self->b_opt = arg1; self->b_cap = arg2; self->b_align = 0; self->b_mask = arg3; self->b_site = caller; }
/* withOptions(options, capacity, alignment) */
fbt::_ZN24IOBufferMemoryDescriptor11withOptions*:entry /FROM_KEXT && !self->b_on/
{ self->b_on = 1; self->b_opt = arg0; self->b_cap = arg1; self->b_align = arg2; self->b_mask = 0; self->b_site = caller; }
/* withCapacity(capacity, direction, contiguous) */
fbt::_ZN24IOBufferMemoryDescriptor12withCapacity*:entry /FROM_KEXT && !self->b_on/
{ self->b_on = 1; self->b_opt = arg1 | (arg2 ? 0x10 : 0); self->b_cap = arg0; self->b_align = 0; self->b_mask = 0; self->b_site = caller; }

fbt::_ZN24IOBufferMemoryDescriptor17inTaskWithOptions*:return,
fbt::_ZN24IOBufferMemoryDescriptor22inTaskWithPhysicalMask*:return,
fbt::_ZN24IOBufferMemoryDescriptor11withOptions*:return,
fbt::_ZN24IOBufferMemoryDescriptor12withCapacity*:return
/self->b_on/
{
	printf("%d %d %d IOBufferMemoryDescriptor_alloc obj=0x%x capacity=%d options=0x%x align=%d mask=0x%x site=%a exec=%s\n",
	       timestamp, cpu, tid, arg1, self->b_cap, self->b_opt, self->b_align, self->b_mask, self->b_site, execname);
	bmd[arg1] = arg1 != 0;
	self->b_on = 0;
}

fbt::_ZN24IOBufferMemoryDescriptor4freeEv:entry /bmd[arg0]/
{
	printf("%d %d %d IOBufferMemoryDescriptor_free obj=0x%x exec=%s\n", timestamp, cpu, tid, arg0, execname);
	bmd[arg0] = 0;
}

/* ---- IODMACommand: prepare(offset, length, ...) / complete(...) ---- */

fbt::_ZN12IODMACommand7prepareE*:entry /FROM_KEXT/
{ printf("%d %d %d IODMACommand_prepare obj=0x%x offset=%d length=%d site=%a exec=%s\n", timestamp, cpu, tid,
         arg0, arg1, arg2, caller, execname); }

fbt::_ZN12IODMACommand8completeE*:entry /FROM_KEXT/
{ printf("%d %d %d IODMACommand_complete obj=0x%x site=%a exec=%s\n", timestamp, cpu, tid, arg0, caller, execname); }

dtrace:::END
{
	printf("# end\n");
}
