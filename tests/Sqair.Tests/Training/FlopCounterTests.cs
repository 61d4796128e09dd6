using Sqair.Jobs;
using Sqair.Model;
using Sqair.Training;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Sqair.Tests.Training;

/// <summary>The bench's FLOP count against hand counts, one layer of each kind (2 FLOPs per multiply-add).</summary>
public class FlopCounterTests
{
    static double Count(Module<Tensor, Tensor> layer, Tensor input)
    {
        var counter = FlopCounter.Attach(Sequential(("layer", layer)));
        using (no_grad()) layer.call(input);
        return counter.Detach();
    }

    [Fact]
    public void Linear_is_two_flops_per_weight_per_row() =>
        Assert.Equal(2.0 * 160 * 400 * 256, Count(Linear(400, 256), zeros(160, 400)));

    [Fact]
    public void Convolution_is_two_flops_per_kernel_tap_per_output()
    {
        // 3×3, stride 2, 1 → 16 channels: a 20×20 input gives 16×10×10 outputs, each 9 multiply-adds
        Assert.Equal(2.0 * 10 * 16 * 10 * 10 * 9, Count(Conv2d(1, 16, 3, stride: 2, padding: 1), zeros(10, 1, 20, 20)));
        // transposed 4×4, stride 2, 32 → 16 channels: every input value feeds 16×4×4 outputs
        Assert.Equal(2.0 * 10 * 32 * 5 * 5 * 16 * 16,
                     Count(ConvTranspose2d(32, 16, 4, stride: 2, padding: 1), zeros(10, 32, 5, 5)));
    }

    [Fact]
    public void Gru_cell_counts_its_input_and_hidden_products()
    {
        var gru = GRUCell(360, 256);
        var counter = FlopCounter.Attach(gru);
        using (no_grad()) gru.call(zeros(160, 360), zeros(160, 256));
        Assert.Equal(2.0 * 160 * (3 * 256 * 360 + 3 * 256 * 256), counter.Detach());
    }

    [Fact]
    public void A_layer_reachable_under_two_names_is_counted_once()
    {
        // Mlp.Output is both a property and the last module of its Sequential
        var mlp = new Mlp("m", 400, [256], 100);
        var counter = FlopCounter.Attach(mlp);
        using (no_grad()) mlp.call(zeros(160, 400));
        Assert.Equal(2.0 * 160 * (400 * 256 + 256 * 100), counter.Detach());
    }
}
