// tensor.h: a contiguous, row-major buffer with a shape, a dtype and a device.
//
// Deliberately small: no strides, no autograd, no broadcasting. Ops take their
// outputs as pre-allocated tensors, so every allocation in the model is visible.
// view() and rows() share storage (like a pointer plus a shape); clone() copies.
//
//   Tensor x = Tensor::zeros({B, n, d});            // f32 on the CPU
//   Tensor g = x.to(Device::CUDA);                   // a copy on the GPU
//   float* p = x.data<float>();                      // checks the dtype
//
// F64 exists so every CPU op can run in double: the finite-difference gradient
// checks use it as their reference. CUDA kernels are F32 only.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "runtime/device.h"
#include "runtime/error.h"

namespace ittt {

enum class DType { F32, F64, I32 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "F32", "F64", "I32" (safetensors spelling)

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "(2, 3, 4)"
int64_t shape_numel(const Shape& s);

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }

class Tensor {
public:
    Tensor() = default;

    static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
    static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
    // A CPU tensor holding a copy of `values` (size must equal numel(shape)).
    template <class T>
    static Tensor from_vector(const std::vector<T>& values, const Shape& shape);

    bool defined() const { return storage_ != nullptr; }
    const Shape& shape() const { return shape_; }
    int ndim() const { return static_cast<int>(shape_.size()); }
    int64_t dim(int i) const;  // negative i counts from the end
    int64_t numel() const { return numel_; }
    size_t bytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
    DType dtype() const { return dtype_; }
    Device device() const { return device_; }
    std::string describe() const;  // "F32 (2, 3) on cpu"

    template <class T> T* data();
    template <class T> const T* data() const;
    void* raw();
    const void* raw() const;

    // Same storage, new shape with the same numel.
    Tensor view(const Shape& shape) const;
    // Rows [begin, end) along dim 0, sharing storage.
    Tensor rows(int64_t begin, int64_t end) const;

    Tensor clone() const;
    Tensor to(Device d) const;          // copy to device d (a clone if already there)
    Tensor to_dtype(DType t) const;     // converting copy between F32 and F64 (CPU only)
    void copy_from(const Tensor& src);  // same shape and dtype, any devices
    void zero_();

    // Host copies, converting from any float dtype.
    std::vector<float> to_f32_vector() const;
    std::vector<double> to_f64_vector() const;
    std::vector<int32_t> to_i32_vector() const;

    // The host tensor heap: bytes held by live CPU tensors now, and the most held since the
    // last reset_host_peak() (what `make bench` reports as a TTT layer's training memory).
    static size_t host_bytes_in_use();
    static size_t host_bytes_peak();
    static void reset_host_peak();  // peak := bytes in use now

private:
    struct Storage;
    std::shared_ptr<Storage> storage_;
    size_t offset_bytes_ = 0;
    Shape shape_;
    int64_t numel_ = 0;
    DType dtype_ = DType::F32;
    Device device_ = Device::CPU;
};

// ---- template definitions ----

template <class T>
T* Tensor::data() {
    ITTT_CHECK(dtype_ == dtype_of<T>(), "tensor ", describe(), ": asked for ", dtype_name(dtype_of<T>()), " data");
    return static_cast<T*>(raw());
}
template <class T>
const T* Tensor::data() const {
    ITTT_CHECK(dtype_ == dtype_of<T>(), "tensor ", describe(), ": asked for ", dtype_name(dtype_of<T>()), " data");
    return static_cast<const T*>(raw());
}
template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
    ITTT_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "Tensor::from_vector: ", values.size(),
               " values for shape ", shape_str(shape));
    Tensor t = empty(shape, dtype_of<T>(), Device::CPU);
    std::copy(values.begin(), values.end(), t.data<T>());
    return t;
}

}  // namespace ittt
