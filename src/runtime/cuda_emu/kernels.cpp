// kernels.cpp (CUDA emulator): what the emulator knows about each kernel.
//
// A __shared__ array is a function-local static here, so the executable's symbol
// table holds it as "_ZZ<the kernel's mangled name>E<array name>", with its address
// and size. Read once, that gives every kernel its demangled name (for reports),
// its static shared arrays (to poison them with NaN before each block) and their
// total size (cudaFuncGetAttributes' sharedSizeBytes, and the launch's limit check).
// Arrays declared in __device__ helpers that a kernel calls are not found this way.
#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace ittt::cuda_emu {

namespace {

struct SymbolTable {
    std::unordered_map<uintptr_t, std::string> functions;  // address -> mangled name
    std::multimap<std::string, StaticShared> locals;       // mangled "_ZZ..." name -> object
};

int find_main_program(struct dl_phdr_info* info, size_t, void* out) {
    *static_cast<uintptr_t*>(out) = info->dlpi_addr;  // the first entry is the executable
    return 1;
}

// The executable's .symtab (absent when stripped: then the table is empty).
SymbolTable read_symbols() {
    SymbolTable table;
    uintptr_t bias = 0;
    dl_iterate_phdr(find_main_program, &bias);
    const int fd = open("/proc/self/exe", O_RDONLY);
    if (fd < 0) return table;
    struct stat st {};
    if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
        close(fd);
        return table;
    }
    void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return table;
    const auto* base = static_cast<const unsigned char*>(map);
    const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
    if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64) {
        const auto* sections = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
        for (int i = 0; i < eh->e_shnum; ++i) {
            if (sections[i].sh_type != SHT_SYMTAB) continue;
            const auto* symbols = reinterpret_cast<const Elf64_Sym*>(base + sections[i].sh_offset);
            const char* names = reinterpret_cast<const char*>(base + sections[sections[i].sh_link].sh_offset);
            const size_t count = sections[i].sh_size / sizeof(Elf64_Sym);
            for (size_t s = 0; s < count; ++s) {
                const Elf64_Sym& sym = symbols[s];
                if (sym.st_shndx == SHN_UNDEF || sym.st_value == 0) continue;
                const char* name = names + sym.st_name;
                const int type = ELF64_ST_TYPE(sym.st_info);
                if (type == STT_FUNC && std::strncmp(name, "_Z", 2) == 0) table.functions.emplace(sym.st_value + bias, name);
                else if (type == STT_OBJECT && std::strncmp(name, "_ZZ", 3) == 0 && sym.st_shndx < eh->e_shnum &&
                         (sections[sym.st_shndx].sh_flags & SHF_WRITE))  // a const table is no __shared__ array
                    table.locals.emplace(name, StaticShared{sym.st_value + bias, sym.st_size, ""});
            }
        }
    }
    munmap(map, static_cast<size_t>(st.st_size));
    return table;
}

const SymbolTable& symbols() {
    static const SymbolTable table = read_symbols();
    return table;
}

// "void ittt::kernels::(anonymous namespace)::gemm_smem_kernel<false, true>(ittt::...::GemmArgs)"
// -> "ittt::kernels::gemm_smem_kernel<false, true>"
std::string readable(const std::string& mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status), std::free);
    if (status != 0 || !d) return mangled;
    std::string s = d.get();
    if (s.rfind("void ", 0) == 0) s = s.substr(5);
    for (size_t p; (p = s.find("(anonymous namespace)::")) != std::string::npos;) s.erase(p, 23);
    int depth = 0;  // cut the parameter list: the first '(' outside template arguments
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '<') ++depth;
        else if (s[i] == '>') --depth;
        else if (s[i] == '(' && depth == 0) return s.substr(0, i);
    }
    return s;
}

// "_ZZ...E6a_tile" or "_ZZ...E6a_tile_0" -> "a_tile"
std::string local_name(const std::string& mangled, size_t prefix) {
    size_t i = prefix, length = 0;
    while (i < mangled.size() && mangled[i] >= '0' && mangled[i] <= '9') length = length * 10 + static_cast<size_t>(mangled[i++] - '0');
    return i + length <= mangled.size() ? mangled.substr(i, length) : mangled.substr(prefix);
}

KernelInfo describe(const void* kernel, const char* fallback_name) {
    KernelInfo k;
    k.name = fallback_name;
    const SymbolTable& table = symbols();
    auto f = table.functions.find(reinterpret_cast<uintptr_t>(kernel));
    if (f == table.functions.end()) return k;
    k.symbols_known = true;
    k.name = readable(f->second);
    const std::string prefix = "_ZZ" + f->second.substr(2) + "E";  // "_Z<encoding>" -> "_ZZ<encoding>E<local>"
    for (auto it = table.locals.lower_bound(prefix); it != table.locals.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
        StaticShared s = it->second;
#if defined(__SANITIZE_ADDRESS__)
        // AddressSanitizer pads globals with redzones; the array ends where they begin.
        if (const void* red = __asan_region_is_poisoned(reinterpret_cast<void*>(s.address), s.bytes))
            s.bytes = static_cast<size_t>(static_cast<const char*>(red) - reinterpret_cast<const char*>(s.address));
#endif
        s.name = local_name(it->first, prefix.size());
        k.shared.push_back(s);
        k.static_shared_bytes += s.bytes;
    }
    return k;
}

}  // namespace

KernelInfo& kernel_info(const void* kernel, const char* fallback_name) {
    static std::mutex mutex;
    static std::unordered_map<const void*, std::unique_ptr<KernelInfo>> known;
    std::lock_guard<std::mutex> lock(mutex);
    std::unique_ptr<KernelInfo>& slot = known[kernel];
    if (!slot) slot = std::make_unique<KernelInfo>(describe(kernel, fallback_name));
    return *slot;
}

}  // namespace ittt::cuda_emu
