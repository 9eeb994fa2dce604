// bench_resnet — whole-model training and inference throughput, the same work
// as benchmarks/torch_resnet_bench.py and with the same output lines:
//
//   bench_resnet --size 96 --batch 128 --steps 20 [--device cuda] [--cases train,infer,finetune]
//                [--channels 1|3] [--precision fp32|bf16|fp16] [--no-tf32] [--deterministic]
//   case=resnet18_train batch=128 size=96x96 threads=2 imgs_per_s=... peak_rss_mb=... device=cpu precision=fp32
//   isa=avx512
//
// --precision bf16: convolutions and Linear under bf16 autocast
// (core/precision.hpp), as torch_resnet_bench.py --autocast bf16.
// On a GPU: TF32 convolutions by default (PyTorch's default; precision=tf32conv),
// --no-tf32 for full fp32, --deterministic for cuda::set_deterministic(true).
//
// peak_rss_mb is the process's peak resident memory so far (getrusage), so
// it describes one case only when the process runs one case (--cases train);
// benchmarks/compare_pytorch.sh runs each case in its own process.
// A training step is zero_grad, forward, cross-entropy, backward and a plain
// SGD step (lr 0.01), on random N(0,1) images of --channels channels (1) and
// random labels (10 classes), d2l's ResNet-18 unless --model names another.
// As in the Trainer (and in PyTorch, whose input needs no gradient), no
// gradient is computed for the images. `finetune` is the same step with the
// backbone frozen (models::freeze_backbone: only the classifier trains), as
// train_images --freeze-backbone runs it. Two warm-up
// steps run first (on a GPU they choose the cuDNN algorithms and fill the
// allocator's cache); the timed steps end with a device synchronisation.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include <CLI/CLI.hpp>
#include <rescnn/rescnn.hpp>

namespace rn = rescnn;

namespace {

struct Args {
  int threads = 2;
  long size = 28, batch = 128, steps = 5, channels = 1;
  std::string device = "cpu", cases = "train,infer", model = "d2l_resnet18", precision = "fp32";
  bool tf32 = true;
  bool deterministic = false;
};

// The command line, with --help, through CLI11 as the examples have it.
Args parse(int argc, char** argv) {
  Args a;
  CLI::App app{"bench_resnet: training and inference throughput of one ResNet, as torch_resnet_bench.py measures it"};
  app.add_option("--threads", a.threads, "CPU threads (0: OpenMP's default)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--size", a.size, "Image height and width")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", a.batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--steps", a.steps, "Timed steps per case")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--device", a.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--cases", a.cases, "Comma-separated: train, infer, finetune (train with a frozen backbone)")
      ->capture_default_str();
  app.add_option("--channels", a.channels, "Image channels (1: Fashion-MNIST, 3: RGB)")
      ->capture_default_str()
      ->check(CLI::Range(1L, 4L));
  app.add_option("--model", a.model, "Model name (models::model_names())")->capture_default_str();
  app.add_option("--precision", a.precision, "Convolutions and Linear in fp32, bf16 or fp16 (autocast)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}, CLI::ignore_case));
  app.add_flag("!--no-tf32", a.tf32, "CUDA: full fp32 convolutions instead of TF32");
  app.add_flag("--deterministic", a.deterministic, "CUDA: deterministic cuDNN algorithms only");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  return a;
}

template <class D>
void synchronize() {
#if RESCNN_WITH_CUDA
  if constexpr (rn::is_cuda_v<D>) rn::cuda::synchronize();
#endif
}

enum class Case { train, infer, finetune };

// Images per second over `steps` steps of one case.
template <class D>
double bench(const Args& a, Case c) {
  const bool train = c != Case::infer;
  const rn::Precision precision = rn::parse_precision(a.precision, "--precision");
  const rn::Autocast autocast(precision);
  rn::manual_seed(0);
  auto model = rn::models::create<float, D>(a.model, {.num_classes = 10, .in_channels = a.channels});
  if (c == Case::finetune) rn::models::freeze_backbone(*model);
  model->set_input_grad_needed(false);
  const auto x = rn::Tensor<float>::normal({a.batch, a.channels, a.size, a.size}, 0, 1).template to<D>();
  std::vector<std::int64_t> labels(static_cast<std::size_t>(a.batch));
  for (auto& l : labels) l = static_cast<std::int64_t>(rn::default_generator().uniform(0, 10)) % 10;
  const auto y = rn::Tensor<std::int64_t>::from_vector({a.batch}, labels).template to<D>();
  rn::optim::SGD<float, D> opt(model->named_parameters(), {.lr = 0.01});
  rn::nn::CrossEntropyLoss<float, D> criterion;
  // fp16 trains with loss scaling, as a real run does (and as
  // torch_resnet_bench.py --amp fp16 does with torch.cuda.amp.GradScaler).
  rn::optim::GradScaler<float, D> scaler({.enabled = precision == rn::Precision::fp16});
  model->train(train);
  const auto step = [&] {
    if (train) {
      opt.zero_grad();
      criterion(model->forward(x), y);
      model->backward(scaler.scale(criterion.backward()));
      scaler.step(opt);
      scaler.update();
    } else {
      rn::nn::NoGradGuard no_grad;
      model->forward(x);
    }
  };
  step();
  step();
  synchronize<D>();
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < a.steps; ++i) step();
  synchronize<D>();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(a.batch * a.steps) / seconds;
}

// The peak resident set of this process, in MiB (Linux reports KiB).
double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

template <class D>
void run(const Args& a, std::string precision) {
  const rn::Precision autocast = rn::parse_precision(a.precision, "--precision");
  rn::check_precision_supported<D>(autocast, "--precision");
  // One token for the case line: what the products really ran in (a CPU
  // without a bf16 engine runs bf16 as fp32, and the library says so on
  // stderr), and on the CPU the engine: precision=bf16 bf16_engine=amx.
  if (autocast != rn::Precision::fp32) {
    precision = rn::is_cuda_v<D> || rn::cpu::bf16_compute_available() ? rn::precision_name(autocast) : "fp32";
    if (!rn::is_cuda_v<D> && autocast == rn::Precision::bf16)
      precision += std::string(" bf16_engine=") + rn::cpu::bf16_engine_name(rn::cpu::bf16_engine());
  }
  std::string case_model = a.model == "d2l_resnet18" ? "resnet18" : a.model;
  std::string rest = a.cases;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string c = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    if (c != "train" && c != "infer" && c != "finetune")
      throw rn::ValueError("--cases: train, infer and/or finetune, got '" + c + "'");
    const double r = bench<D>(a, c == "train" ? Case::train : c == "infer" ? Case::infer : Case::finetune);
    std::printf(
        "case=%s_%s batch=%ld size=%ldx%ld threads=%d imgs_per_s=%.1f peak_rss_mb=%.0f device=%s "
        "precision=%s isa=%s%s%s\n",
        case_model.c_str(), c.c_str(), a.batch, a.size, a.size, a.threads, r, peak_rss_mb(),
        std::string(D::name).c_str(), precision.c_str(), rn::cpu::isa_name(rn::cpu::isa()),
        a.channels == 1 ? "" : (" channels=" + std::to_string(a.channels)).c_str(),
        a.deterministic ? " deterministic" : "");
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    if (a.threads > 0) rn::set_num_threads(a.threads);
    if (a.device == "cpu") {
      // --deterministic changes nothing here: the CPU kernels always are.
      run<rn::Cpu>(a, "fp32");
    } else {
#if RESCNN_WITH_CUDA
      // PyTorch's defaults unless --no-tf32: TF32 convolutions, fp32 matmuls.
      if (!a.tf32) rn::cuda::set_allow_tf32(false);
      rn::cuda::set_deterministic(a.deterministic);
      std::fprintf(stderr, "device: %s\n", rn::cuda::context().properties().name);
      run<rn::Cuda>(a, a.tf32 ? "tf32conv" : "fp32");
#else
      throw rn::ValueError("--device cuda: this binary was built without CUDA (configure with -DRESCNN_CUDA=ON)");
#endif
    }
  } catch (const rn::Error& e) {
    std::fprintf(stderr, "bench_resnet: %s\n", e.what());
    return 2;
  }
  return 0;
}
