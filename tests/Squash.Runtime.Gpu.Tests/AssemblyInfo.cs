// Each model on ILGPU's CPU accelerator runs 16 OS threads that meet at barriers; two such models at once on a small
// machine only slow each other down, so the test classes run one after another.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
