#include "streamer/impl/backend_plugin.h"

#include <dlfcn.h>

#include "streamer/streamer.h"

namespace runai::streamer {
namespace {

constexpr size_t kErrorBufferSize = 1024;

common::Status PluginError(const std::string& library, const std::string& cause) {
  return {RUNAI_E_PLUGIN, "backend plugin '" + library + "': " + cause};
}

// A failed plugin call: the plugin's own code and message, or a fallback
// message when the plugin wrote none.
common::Status CallStatus(int code, const char* error, const std::string& what) {
  if (code == RUNAI_OK) return common::Status::Ok();
  std::string message = error[0] != '\0' ? std::string(error)
                                         : what + ": plugin returned " + common::StatusName(code);
  // A plugin returning something outside the enum is still a failure.
  if (code < RUNAI_E_INVALID_ARGUMENT || code > RUNAI_E_INTERNAL) code = RUNAI_E_BACKEND;
  return {code, message};
}

template <typename Fn>
bool Resolve(void* handle, const char* name, Fn* fn) {
  dlerror();
  void* symbol = dlsym(handle, name);
  if (symbol == nullptr) return false;
  *fn = reinterpret_cast<Fn>(symbol);
  return true;
}

}  // namespace

common::Status BackendPlugin::Load(const std::string& library_path, const Options& options,
                                   std::shared_ptr<BackendPlugin>* out) {
  if (library_path.empty() || library_path[0] != '/') {
    return PluginError(library_path, "library path must be absolute");
  }
  std::shared_ptr<BackendPlugin> plugin(new BackendPlugin());
  plugin->library_path_ = library_path;
  dlerror();
  // RTLD_NODELETE: a plugin stays mapped until the process exits. Plugins that link their own
  // OpenSSL register exit handlers (atexit), which would point into unmapped code after dlclose.
  plugin->handle_ = dlopen(library_path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (plugin->handle_ == nullptr) {
    const char* why = dlerror();
    return PluginError(library_path, std::string("cannot load: ") + (why ? why : "dlopen failed"));
  }
  runai_backend_abi_version_fn abi_version = nullptr;
  runai_backend_create_fn create = nullptr;
  struct Symbol {
    const char* name;
    bool found;
  } symbols[] = {
      {RUNAI_BACKEND_SYM_ABI_VERSION,
       Resolve(plugin->handle_, RUNAI_BACKEND_SYM_ABI_VERSION, &abi_version)},
      {RUNAI_BACKEND_SYM_CREATE, Resolve(plugin->handle_, RUNAI_BACKEND_SYM_CREATE, &create)},
      {RUNAI_BACKEND_SYM_DESTROY,
       Resolve(plugin->handle_, RUNAI_BACKEND_SYM_DESTROY, &plugin->destroy_)},
      {RUNAI_BACKEND_SYM_SIZE, Resolve(plugin->handle_, RUNAI_BACKEND_SYM_SIZE, &plugin->size_)},
      {RUNAI_BACKEND_SYM_STAT, Resolve(plugin->handle_, RUNAI_BACKEND_SYM_STAT, &plugin->stat_)},
      {RUNAI_BACKEND_SYM_READ, Resolve(plugin->handle_, RUNAI_BACKEND_SYM_READ, &plugin->read_)},
      {RUNAI_BACKEND_SYM_READ_CHECKED,
       Resolve(plugin->handle_, RUNAI_BACKEND_SYM_READ_CHECKED, &plugin->read_checked_)},
      {RUNAI_BACKEND_SYM_LIST, Resolve(plugin->handle_, RUNAI_BACKEND_SYM_LIST, &plugin->list_)},
  };
  for (const Symbol& symbol : symbols) {
    if (!symbol.found) {
      return PluginError(library_path, std::string("missing symbol ") + symbol.name);
    }
  }
  int abi = abi_version();
  if (abi != RUNAI_BACKEND_ABI_VERSION) {
    return PluginError(library_path, "ABI version " + std::to_string(abi) + ", expected " +
                                         std::to_string(RUNAI_BACKEND_ABI_VERSION));
  }
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& option : options) {
    keys.push_back(option.first.c_str());
    values.push_back(option.second.c_str());
  }
  char error[kErrorBufferSize] = {0};
  runai_backend_t* instance = nullptr;
  int code = create(keys.data(), values.data(), keys.size(), &instance, error, sizeof(error));
  if (code != RUNAI_OK || instance == nullptr) {
    std::string cause = error[0] != '\0' ? error : std::string(common::StatusName(code));
    if (code == RUNAI_OK) cause = "create returned no instance";
    return PluginError(library_path, "create failed: " + cause);
  }
  plugin->instance_ = instance;
  *out = std::move(plugin);
  return common::Status::Ok();
}

BackendPlugin::~BackendPlugin() {
  if (instance_ != nullptr) destroy_(instance_);
  if (handle_ != nullptr) dlclose(handle_);
}

common::Status BackendPlugin::Size(const std::string& uri, uint64_t* size) const {
  char error[kErrorBufferSize] = {0};
  int code = size_(instance_, uri.c_str(), size, error, sizeof(error));
  return CallStatus(code, error, "size of '" + uri + "'");
}

common::Status BackendPlugin::Stat(const std::string& uri, runai_object_info_t* info) const {
  char error[kErrorBufferSize] = {0};
  *info = runai_object_info_t{};
  int code = stat_(instance_, uri.c_str(), info, error, sizeof(error));
  // Whatever the plugin wrote, the strings end inside their arrays.
  info->version[sizeof(info->version) - 1] = '\0';
  info->checksums[sizeof(info->checksums) - 1] = '\0';
  return CallStatus(code, error, "stat of '" + uri + "'");
}

common::Status BackendPlugin::Read(const std::string& uri, uint64_t offset, uint64_t size,
                                   void* dst) const {
  char error[kErrorBufferSize] = {0};
  int code = read_(instance_, uri.c_str(), offset, size, dst, error, sizeof(error));
  return CallStatus(code, error, "read of '" + uri + "'");
}

common::Status BackendPlugin::ReadChecked(const std::string& uri, uint64_t offset, uint64_t size,
                                          void* dst, int32_t checksum,
                                          const std::vector<uint64_t>& sizes,
                                          std::vector<uint64_t>* crcs) const {
  char error[kErrorBufferSize] = {0};
  crcs->assign(sizes.size(), 0);
  int code = read_checked_(instance_, uri.c_str(), offset, size, dst, checksum, sizes.data(),
                           crcs->data(), sizes.size(), error, sizeof(error));
  return CallStatus(code, error, "read of '" + uri + "'");
}

namespace {
struct ListContext {
  const std::function<bool(const std::string&, uint64_t)>* entry;
};
int ListTrampoline(const char* uri, uint64_t size, void* context) {
  auto* list = static_cast<ListContext*>(context);
  return (*list->entry)(uri, size) ? 0 : 1;
}
}  // namespace

common::Status BackendPlugin::List(
    const std::string& uri_prefix,
    const std::function<bool(const std::string&, uint64_t)>& entry) const {
  char error[kErrorBufferSize] = {0};
  ListContext context{&entry};
  int code = list_(instance_, uri_prefix.c_str(), &ListTrampoline, &context, error, sizeof(error));
  return CallStatus(code, error, "list of '" + uri_prefix + "'");
}

}  // namespace runai::streamer
