// mapFile(path, offset, length): a read-write, copy-on-write (MAP_PRIVATE) mapping of one byte range of a file,
// returned as an external ArrayBuffer that unmaps itself when collected. Checkpoint tensors are used in place from
// the page cache this way (no read into the JS heap, pages loaded by the OS on first touch and dropped under
// pressure); MAP_PRIVATE means a caller that writes into a weight gets its own page instead of a crash or a change
// to the file.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define KESTREL_HAVE_MMAP 1
#endif

namespace kestrel {
namespace {

[[noreturn]] void MapFail(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, "@kestrel/native mapFile: " + msg);
  e.Set("code", Napi::String::New(env, code));
  throw e;
}

#ifdef KESTREL_HAVE_MMAP
struct Mapping {
  void* base;
  size_t len;
};

Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber())
    MapFail(env, "E_INTERNAL", "expected (path: string, offset: number, length: number)");
  const std::string path = info[0].As<Napi::String>();
  const double doff = info[1].As<Napi::Number>().DoubleValue();
  const double dlen = info[2].As<Napi::Number>().DoubleValue();
  if (!(doff >= 0) || !(dlen >= 0) || doff > 9.0e15 || dlen > 9.0e15) MapFail(env, "E_INTERNAL", "offset/length out of range");
  const size_t off = static_cast<size_t>(doff);
  const size_t len = static_cast<size_t>(dlen);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) MapFail(env, errno == ENOENT ? "E_MODEL_NOT_FOUND" : "E_IO", "cannot open " + path + ": " + strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    MapFail(env, "E_IO", "cannot stat " + path + ": " + strerror(err));
  }
  // A range past the end would map pages that raise SIGBUS on access; refuse it here instead.
  if (off + len > static_cast<size_t>(st.st_size)) {
    close(fd);
    MapFail(env, "E_CHECKPOINT_FORMAT", path + ": range [" + std::to_string(off) + ", " + std::to_string(off + len) +
                                            ") lies past the end of the " + std::to_string(st.st_size) + "-byte file (truncated?)");
  }
  if (len == 0) {
    close(fd);
    return Napi::ArrayBuffer::New(env, 0);
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t start = off / page * page;
  const size_t skip = off - start;
  void* base = mmap(nullptr, len + skip, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, static_cast<off_t>(start));
  const int err = errno;
  close(fd);  // the mapping keeps the file alive
  if (base == MAP_FAILED) MapFail(env, "E_IO", "cannot map " + path + ": " + strerror(err));
  auto* m = new Mapping{base, len + skip};
  return Napi::ArrayBuffer::New(
      env, static_cast<char*>(base) + skip, len,
      [](Napi::Env, void*, Mapping* p) {
        munmap(p->base, p->len);
        delete p;
      },
      m);
}
#else
Napi::Value MapFile(const Napi::CallbackInfo& info) {
  MapFail(info.Env(), "E_BACKEND_UNAVAILABLE", "memory mapping is not available on this platform");
}
#endif

}  // namespace

void RegisterMmap(Napi::Env env, Napi::Object exports) {
  exports.Set("mapFile", Napi::Function::New(env, MapFile));
#ifdef KESTREL_HAVE_MMAP
  exports.Set("canMapFiles", Napi::Boolean::New(env, true));
#else
  exports.Set("canMapFiles", Napi::Boolean::New(env, false));
#endif
}

}  // namespace kestrel
