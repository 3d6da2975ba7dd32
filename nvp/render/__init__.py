"""The person-specific neural rendering stage (§5.2 of the paper).

A learnable neural texture (:class:`nvp.nets.texture.NeuralTexture`) is sampled at the
rasterized UVs of the tracked face; a renderer U-Net turns the features into the face
(network 1) and a blending U-Net composites it into the eroded target frame (network 2), both
:class:`nvp.nets.unet.RenderUNet`. :mod:`nvp.render.losses` holds the training loss:
``L = ℓ1(I, I*) + ℓ1_face(Î, I*) + VGG(I, I*)`` with images in ``[-1, 1]``.
"""
