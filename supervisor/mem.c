/*
 * mem: give back the start-up's pages once the supervisor has settled.
 *
 * The binary is static, so every code page it maps is its own (PSS = RSS): nothing is shared with
 * other processes the way s6's skalibs/libc pages are. Parsing the manifest, resolving users and
 * starting the services touch most of the 1 MB of code, and the page cache's fault-around maps
 * 64 KB around each touched page, so after start-up nearly all of the text is resident although the
 * loop then runs a small part of it. Once start-up is over (every service has left WAITING and
 * STARTING, and after a reload), the read-only segments of the program are dropped from our page
 * tables with MADV_DONTNEED: they stay in the page cache, and what the loop runs comes back on first
 * use. Writable segments (data, RELRO, bss) are never touched: dropping them would lose their
 * contents.
 */
#include "sv.h"

#include <link.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

static int shed_program(struct dl_phdr_info *info, size_t size, void *data)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    (void)size;
    (void)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) != 0) continue;
        uintptr_t start = (info->dlpi_addr + ph->p_vaddr) & ~(page - 1);
        uintptr_t end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        (void)madvise((void *)start, end - start, MADV_DONTNEED);
    }
    return 1; /* the first object is the program itself: stop there */
}

void mem_shed(sv_ctx *sv)
{
    for (size_t i = 0; i < sv->nslots; i++) {
        const svc *s = &sv->slots[i];
        if (s->used && s->want && (s->state == SVC_WAITING || s->state == SVC_STARTING)) return;
    }
    sv->shed_pending = 0;
    dl_iterate_phdr(shed_program, NULL);
}
