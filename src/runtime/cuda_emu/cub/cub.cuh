// cub/cub.cuh (CUDA emulator): the parts of CUB the emulator provides.
#pragma once
#include "device/device_radix_sort.cuh"
