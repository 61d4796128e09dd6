using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Tests;

public class TorchSmokeTests
{
    [Fact]
    public void Native_libtorch_loads_and_runs_a_forward_and_backward_pass()
    {
        var x = tensor(new float[] { 1, 2, 3 }, requires_grad: true);
        var y = (x * x).sum();
        y.backward();
        Assert.Equal(new float[] { 2, 4, 6 }, x.grad!.data<float>().ToArray());
    }
}
