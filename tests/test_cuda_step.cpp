// [cuda] tests of what a training step costs the runtime: device allocations and waits for
// the GPU (the counters of runtime/device.h). After the first steps have filled the caching
// allocator, a step allocates nothing with cudaMalloc and waits for the GPU once: the copy of
// its report (the losses, the gradient norm, the finiteness flags) after the backward.
// On the emulator the counts are the same as on a GPU: they count calls, not time.
#include <cmath>
#include <limits>

#include "model/model.h"
#include "ops/ops.h"
#include "runtime/device.h"
#include "train/trainer.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace ittt;
using namespace ittt::test;

TEST_CASE("a steady-state CUDA training step allocates nothing and waits for the GPU once", "[cuda][train]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (int grad_accum : {1, 2})
        for (double clip : {0.0, 1e-3}) {  // 1e-3: every step's gradients are scaled down
            INFO("grad_accum " << grad_accum << ", grad_clip " << clip);
            // Blocks other tests left in the cache could be taken by the first steps for smaller
            // tensors (best fit within 2x) and change when the cache settles: start it empty.
            device::empty_cache();
            ModelConfig c = tiny_config();
            Model m(c, DType::F32, Device::CUDA);
            m.init_random(5);
            TrainConfig tc;
            tc.steps = 4;
            tc.warmup = 0;
            tc.grad_accum = grad_accum;
            tc.grad_clip = clip;
            Trainer trainer(m, tc, random_batches(c, 2, 9));
            trainer.step();
            trainer.step();  // the cache now holds a block of every size a step asks for
            device::reset_counters();
            const StepStats s = trainer.step();
            const device::Counters used = device::counters();
            INFO("cudaMalloc calls " << used.device_allocations << ", blocks from the cache " << used.cache_hits << ", waits "
                                     << used.host_waits << ", uploads " << used.uploads);
            CHECK(used.device_allocations == 0);
            CHECK(used.host_waits == 1);
            CHECK(used.cache_hits > 0);
            CHECK(std::isfinite(s.loss));
            CHECK(std::isfinite(s.grad_norm));
        }
}

TEST_CASE("the CUDA caching allocator reuses freed blocks and gives them back on request", "[cuda][train]") {
    ITTT_SKIP_WITHOUT_CUDA();
    device::empty_cache();
    device::reset_counters();
    {
        Tensor a = Tensor::empty({1000}, DType::F32, Device::CUDA);  // 4000 bytes: a 4096-byte block
    }
    CHECK(device::cached_bytes() == 4096);
    Tensor b = Tensor::empty({900}, DType::F32, Device::CUDA);  // fits the freed block
    CHECK(device::counters().device_allocations == 1);
    CHECK(device::counters().cache_hits == 1);
    CHECK(device::cached_bytes() == 0);
    Tensor c = Tensor::empty({4000}, DType::F32, Device::CUDA);  // 16000 bytes: more than twice a free block would waste; a new one
    CHECK(device::counters().device_allocations == 2);
    // The emulator fills a returned block with NaN bytes: a kernel that reads a reused buffer
    // before writing it sees NaN, as it would see garbage on a GPU.
    b.zero_();
    Tensor kept = b;
    b = Tensor();
    kept = Tensor();
    Tensor d = Tensor::empty({900}, DType::F32, Device::CUDA);
    if (cuda_emulated()) CHECK(std::isnan(d.to(Device::CPU).to_f32_vector()[0]));
    device::empty_cache();
    CHECK(device::cached_bytes() == 0);
}

// An update that overflows a weight (lr finite in double, infinite in F32) is named with its
// step: on the CPU at once; on CUDA with the next step's one read, or at run()'s end.
void check_overflow_is_named(Device device) {
    ModelConfig c = tiny_config();
    Model m(c, DType::F32, device);
    m.init_random(6);
    TrainConfig tc;
    tc.steps = 3;
    tc.warmup = 0;
    tc.lr = 1e39;
    Trainer trainer(m, tc, random_batches(c, 2, 9));
    // Catch's composed matchers hold references to temporaries: written out in each check.
#define ITTT_CHECK_OVERFLOW_NAMED(expr)                                                                                           \
    CHECK_THROWS_WITH(expr, Catch::Contains("training stopped at step 1: after the AdamW update (lr ") &&                         \
                                Catch::Contains(") the weight 'model.") && Catch::Contains("holds ") &&                           \
                                Catch::Contains("the update overflowed; nothing was saved for this step"))
    if (device == Device::CPU) {
        ITTT_CHECK_OVERFLOW_NAMED(trainer.step());
        return;
    }
    trainer.step();  // applied; its overflow is flagged on the device
    ITTT_CHECK_OVERFLOW_NAMED(trainer.step());
#undef ITTT_CHECK_OVERFLOW_NAMED
    Trainer last(m, tc, random_batches(c, 2, 9));  // the same weights: non-finite from the start
    CHECK_THROWS_WITH(last.step(), Catch::Contains("the loss is"));
}

TEST_CASE("CPU training: an update that overflows a weight is named with its step", "[train]") { check_overflow_is_named(Device::CPU); }

TEST_CASE("CUDA training: an update that overflows a weight is named with its step, one read late", "[cuda][train]") {
    ITTT_SKIP_WITHOUT_CUDA();
    check_overflow_is_named(Device::CUDA);
}
