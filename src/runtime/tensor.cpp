#include "runtime/tensor.h"

#include <algorithm>
#include <atomic>
#include <sstream>

namespace ittt {

size_t dtype_size(DType t) {
    switch (t) {
        case DType::F32: return 4;
        case DType::F64: return 8;
        case DType::I32: return 4;
    }
    return 0;
}

const char* dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "F32";
        case DType::F64: return "F64";
        case DType::I32: return "I32";
    }
    return "?";
}

std::string shape_str(const Shape& s) {
    std::ostringstream o;
    o << "(";
    for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
    o << ")";
    return o.str();
}

int64_t shape_numel(const Shape& s) {
    int64_t n = 1;
    for (int64_t e : s) {
        ITTT_CHECK(e >= 0, "shape ", shape_str(s), " has a negative dimension");
        n *= e;
    }
    return n;
}

namespace {
std::atomic<size_t> g_host_in_use{0}, g_host_peak{0};

void count_host_alloc(size_t bytes) {
    const size_t now = g_host_in_use.fetch_add(bytes) + bytes;
    size_t peak = g_host_peak.load();
    while (now > peak && !g_host_peak.compare_exchange_weak(peak, now)) {
    }
}
}  // namespace

size_t Tensor::host_bytes_in_use() { return g_host_in_use.load(); }
size_t Tensor::host_bytes_peak() { return g_host_peak.load(); }
void Tensor::reset_host_peak() { g_host_peak.store(g_host_in_use.load()); }

struct Tensor::Storage {
    void* ptr = nullptr;
    size_t bytes = 0;
    Device device = Device::CPU;
    Storage(size_t b, Device d) : ptr(device::allocate(b, d)), bytes(b), device(d) {
        if (d == Device::CPU) count_host_alloc(b);
    }
    ~Storage() {
        device::release(ptr, device);
        if (device == Device::CPU) g_host_in_use.fetch_sub(bytes);
    }
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
};

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
    Tensor t;
    t.shape_ = shape;
    t.numel_ = shape_numel(shape);
    t.dtype_ = dtype;
    t.device_ = device;
    t.storage_ = std::make_shared<Storage>(t.bytes(), device);
    return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    t.zero_();
    return t;
}

int64_t Tensor::dim(int i) const {
    int n = ndim();
    int j = i < 0 ? i + n : i;
    ITTT_CHECK(j >= 0 && j < n, "tensor ", describe(), ": no dimension ", i);
    return shape_[static_cast<size_t>(j)];
}

std::string Tensor::describe() const {
    if (!defined()) return "(undefined tensor)";
    return cat(dtype_name(dtype_), " ", shape_str(shape_), " on ", device_name(device_));
}

void* Tensor::raw() {
    ITTT_CHECK(defined(), "use of an undefined tensor");
    return static_cast<char*>(storage_->ptr) + offset_bytes_;
}
const void* Tensor::raw() const {
    ITTT_CHECK(defined(), "use of an undefined tensor");
    return static_cast<const char*>(storage_->ptr) + offset_bytes_;
}

Tensor Tensor::view(const Shape& shape) const {
    ITTT_CHECK(shape_numel(shape) == numel_, "view: cannot view ", describe(), " as ", shape_str(shape));
    Tensor t = *this;
    t.shape_ = shape;
    return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
    ITTT_CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0], "rows(", begin, ", ", end, "): out of range for ",
               describe());
    Tensor t = *this;
    int64_t row_elems = shape_[0] == 0 ? 0 : numel_ / shape_[0];
    t.offset_bytes_ += static_cast<size_t>(begin * row_elems) * dtype_size(dtype_);
    t.shape_[0] = end - begin;
    t.numel_ = (end - begin) * row_elems;
    return t;
}

Tensor Tensor::clone() const { return to(device_); }

Tensor Tensor::to(Device d) const {
    Tensor t = empty(shape_, dtype_, d);
    t.copy_from(*this);
    return t;
}

Tensor Tensor::to_dtype(DType target) const {
    ITTT_CHECK(device_ == Device::CPU, "to_dtype: only CPU tensors convert, found ", describe());
    if (target == dtype_) return clone();
    Tensor t = empty(shape_, target, Device::CPU);
    if (target == DType::F64) {
        std::vector<double> v = to_f64_vector();
        std::copy(v.begin(), v.end(), t.data<double>());
    } else if (target == DType::F32) {
        std::vector<float> v = to_f32_vector();
        std::copy(v.begin(), v.end(), t.data<float>());
    } else {
        fail(cat("to_dtype: cannot convert ", describe(), " to ", dtype_name(target)));
    }
    return t;
}

void Tensor::copy_from(const Tensor& src) {
    ITTT_CHECK(src.shape_ == shape_ && src.dtype_ == dtype_, "copy_from: source ", src.describe(), " does not match destination ",
               describe());
    device::copy(raw(), device_, src.raw(), src.device_, bytes());
}

void Tensor::zero_() { device::fill_zero(raw(), bytes(), device_); }

namespace {
template <class Out>
std::vector<Out> host_values(const Tensor& t) {
    Tensor h = t.device() == Device::CPU ? t : t.to(Device::CPU);
    std::vector<Out> out(static_cast<size_t>(h.numel()));
    switch (h.dtype()) {
        case DType::F32: std::copy(h.data<float>(), h.data<float>() + h.numel(), out.begin()); break;
        case DType::F64: std::copy(h.data<double>(), h.data<double>() + h.numel(), out.begin()); break;
        case DType::I32: std::copy(h.data<int32_t>(), h.data<int32_t>() + h.numel(), out.begin()); break;
    }
    return out;
}
}  // namespace

std::vector<float> Tensor::to_f32_vector() const { return host_values<float>(*this); }
std::vector<double> Tensor::to_f64_vector() const { return host_values<double>(*this); }
std::vector<int32_t> Tensor::to_i32_vector() const {
    ITTT_CHECK(dtype_ == DType::I32, "to_i32_vector: tensor is ", describe());
    return host_values<int32_t>(*this);
}

}  // namespace ittt
