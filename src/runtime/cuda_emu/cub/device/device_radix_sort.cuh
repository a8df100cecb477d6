// cub/device/device_radix_sort.cuh (CUDA emulator): cub::DeviceRadixSort::SortPairs,
// which the embedding backward uses, as a stable sort on the host.
//
// The same contract as CUB's: the first call (no temporary storage) reports how many
// bytes the second needs; the second sorts (key, value) pairs by bits [begin_bit,
// end_bit) of the key, stably, so pairs with equal keys keep their input order.
// Keys are unsigned integers (the project's ids); other key types fail to compile.
// The pointers must be device memory, as CUB's must.
#pragma once
#include <algorithm>
#include <cstddef>
#include <numeric>
#include <type_traits>
#include <vector>

#include "../../cuda_runtime.h"

namespace cub {

struct DeviceRadixSort {
    template <class KeyT, class ValueT, class NumItemsT>
    static cudaError_t SortPairs(void* d_temp_storage, size_t& temp_storage_bytes, const KeyT* d_keys_in, KeyT* d_keys_out,
                                 const ValueT* d_values_in, ValueT* d_values_out, NumItemsT num_items, int begin_bit = 0,
                                 int end_bit = static_cast<int>(sizeof(KeyT) * 8), cudaStream_t stream = 0) {
        static_assert(std::is_integral_v<KeyT> && std::is_unsigned_v<KeyT>,
                      "the CUDA emulator's cub::DeviceRadixSort::SortPairs sorts unsigned integer keys only");
        (void)stream;
        const size_t n = num_items > 0 ? static_cast<size_t>(num_items) : 0;
        const size_t needed = n * (sizeof(KeyT) + sizeof(ValueT)) + 256;  // CUB's double buffers, roughly
        if (d_temp_storage == nullptr) {
            temp_storage_bytes = needed;
            return cudaSuccess;
        }
        if (temp_storage_bytes < needed || begin_bit < 0 || end_bit > static_cast<int>(sizeof(KeyT) * 8) || begin_bit >= end_bit)
            return cudaErrorInvalidValue;
        if (n == 0) return cudaSuccess;
        using ittt::cuda_emu::is_device_memory;
        if (!is_device_memory(d_temp_storage, temp_storage_bytes) || !is_device_memory(d_keys_in, n * sizeof(KeyT)) ||
            !is_device_memory(d_keys_out, n * sizeof(KeyT)) || !is_device_memory(d_values_in, n * sizeof(ValueT)) ||
            !is_device_memory(d_values_out, n * sizeof(ValueT)))
            return cudaErrorInvalidValue;
        const int bits = end_bit - begin_bit;
        const KeyT mask = bits >= static_cast<int>(sizeof(KeyT) * 8) ? ~KeyT(0) : static_cast<KeyT>((KeyT(1) << bits) - 1);
        auto digit = [&](size_t i) { return static_cast<KeyT>((d_keys_in[i] >> begin_bit) & mask); };
        std::vector<size_t> order(n);
        std::iota(order.begin(), order.end(), size_t(0));
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return digit(a) < digit(b); });
        const std::vector<KeyT> keys(d_keys_in, d_keys_in + n);  // the outputs may overlap the inputs
        const std::vector<ValueT> values(d_values_in, d_values_in + n);
        for (size_t i = 0; i < n; ++i) {
            d_keys_out[i] = keys[order[i]];
            d_values_out[i] = values[order[i]];
        }
        return cudaSuccess;
    }
};

}  // namespace cub
