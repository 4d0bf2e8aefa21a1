// Builds against convkit::mpi (the packaging test only compiles and links it).
#include <convkit/convkit.h>
#include <convkit/distributed/mpi.h>

#include <cstdio>

int main(int argc, char** argv) {
  convkit::distributed::MpiSession mpi(argc, argv);
  convkit::Rng rng(0);
  convkit::Sequential<float> model = convkit::models::lenet5<float>(rng);
  convkit::SGD<float> sgd(model.named_parameters(), convkit::SgdOptions(0.01));
  convkit::distributed::DataParallel<float> dp(mpi.comm(), model, sgd);
  std::printf("rank %d of %d\n", dp.rank(), dp.size());
  return 0;
}
